"""Generate the Postman collection (v2.1) from every service's OpenAPI: `make postman`.

The collection is committed (postman/Plataforma.postman_collection.json); tests/test_postman.py fails
when it is stale. Requests go to {{baseUrl}} (the gateway) with {{accessToken}}, which the "Login"
request stores automatically.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "postman" / "Plataforma.postman_collection.json"
SERVICES = [("auth", "auth"), ("tenants", "tenants"), ("support", "support"), ("leads", "leads"),
            ("conversations", "conversations"), ("billing", "billing"),
            ("webhook-dispatcher", "webhook_dispatcher")]
PUBLIC = {("POST", "/api/auth/login"), ("POST", "/api/auth/refresh"), ("POST", "/api/auth/logout"),
          ("GET", "/api/auth/.well-known/jwks.json"), ("POST", "/api/auth/api-keys/introspect")}


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def example(schema: dict[str, Any], spec: dict[str, Any], depth: int = 0) -> Any:
    """A readable example value: the schema's example/default/first enum, else a typed placeholder."""
    schema = _resolve(schema, spec)
    for key in ("example", "default"):
        if key in schema and schema[key] is not None:
            return schema[key]
    if "examples" in schema and schema["examples"]:
        return schema["examples"][0]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(o, spec).get("type") != "null"]
            return example(options[0], spec, depth) if options else None
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth > 4:
            return {}
        required = set(schema.get("required", []))
        props = schema.get("properties", {})
        keys = [k for k in props if k in required] or list(props)[:3]
        return {k: example(props[k], spec, depth + 1) for k in keys}
    if kind == "array":
        return [example(schema.get("items", {}), spec, depth + 1)]
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "number":
        return schema.get("minimum", 1.0)
    if kind == "boolean":
        return True
    fmt = schema.get("format")
    return {"uuid": "00000000-0000-0000-0000-000000000000", "email": "someone@example.com",
            "date-time": "2026-01-01T00:00:00Z", "uri": "https://example.com/webhook"}.get(fmt, "string")


def _request(method: str, path: str, op: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    segments = [f":{s[1:-1]}" if s.startswith("{") else s for s in path.strip("/").split("/")]
    variables = [{"key": s[1:], "value": ""} for s in segments if s.startswith(":")]
    query = [{"key": p["name"], "value": str(example(p.get("schema", {}), spec)), "disabled": True}
             for p in op.get("parameters", []) if p.get("in") == "query"]
    request: dict[str, Any] = {
        "method": method,
        "header": [],
        "url": {"raw": "{{baseUrl}}/" + "/".join(segments), "host": ["{{baseUrl}}"], "path": segments,
                "variable": variables, "query": query},
        "description": op.get("description") or op.get("summary") or "",
    }
    if (method, path) in PUBLIC:
        request["auth"] = {"type": "noauth"}
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if content:
        request["header"].append({"key": "Content-Type", "value": "application/json"})
        request["body"] = {"mode": "raw", "raw": json.dumps(example(content.get("schema", {}), spec), indent=2)}
    item: dict[str, Any] = {"name": op.get("summary") or f"{method} {path}", "request": request}
    if (method, path) == ("POST", "/api/auth/login"):
        item["name"] = "Login"
        request["body"]["raw"] = json.dumps({"email": "{{ownerEmail}}", "password": "{{ownerPassword}}"}, indent=2)
        item["event"] = [{"listen": "test", "script": {"type": "text/javascript", "exec": [
            "const body = pm.response.json();",
            "pm.collectionVariables.set('accessToken', body.accessToken);",
            "pm.collectionVariables.set('refreshToken', body.refreshToken);",
        ]}}]
    return item


def build() -> dict[str, Any]:
    folders = []
    for _service, package in SERVICES:
        app = importlib.import_module(f"{package}.app").create_app()
        spec = app.openapi()
        items = [_request(method.upper(), path, op, spec)
                 for path, ops in spec.get("paths", {}).items() for method, op in ops.items()]
        folders.append({"name": spec["info"]["title"].split("·")[-1].strip(),
                        "description": spec["info"].get("description", ""), "item": items})
    return {
        "info": {"_postman_id": "5e1f3c52-4c1e-4d8e-9a51-6c1d0e7a9b10", "name": "Plataforma",
                 "description": "Generated from the services' OpenAPI by `make postman`. Run Login first.",
                 "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"},
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{accessToken}}", "type": "string"}]},
        "variable": [{"key": "baseUrl", "value": "http://127.0.0.1:8080"},
                     {"key": "ownerEmail", "value": "owner@plataforma.local"},
                     {"key": "ownerPassword", "value": ""},
                     {"key": "accessToken", "value": ""}, {"key": "refreshToken", "value": ""}],
        "item": folders,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT.relative_to(ROOT)}", file=sys.stderr)
