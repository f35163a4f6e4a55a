"""A fake n8n for tests: an aiohttp server on 127.0.0.1 that answers the part of n8n's public API v1 the
platform uses, VALIDATES every API request against n8n's own OpenAPI file (openapi-core; 400 with
`{"message"}` like n8n when invalid) and behaves as the contract notes in shared/specs/README.md say:

    async with fake_n8n(spec_path=...) as n8n:       # http://127.0.0.1:<port>, key in n8n.api_key
        n8n.url, n8n.api_key
        n8n.add_workflow({...}, active=False)         # a workflow "built in n8n's editor" (register mode)
        n8n.workflows[id], n8n.calls, n8n.webhook_calls, n8n.executions
        n8n.v2 = True                                 # n8n 2.x: /activate, /deactivate answer 404 (v2_status),
                                                      #   /publish, /unpublish work
        n8n.fail_api = (500, "boom")                  # every API call answers that ...
        n8n.fail_api_times = 1                        # ... or only the next N calls (then n8n is fine again)
        n8n.api_delay = 2.0                           # API calls answer after 2 s (timeouts)
        n8n.activation_gap = 0.2                      # after activation the webhook answers 404 for 0.2 s ...
        n8n.gap_requests = 1                          # ... and to at least this many requests
        n8n.execution_status = "error"                # status of the executions webhook calls start
        n8n.add_execution(workflow_id, status="waiting")
        n8n.credentials[id]                           # created with POST /credentials
        await fill_in_credentials(url, key, workflow_id, {"node": ["smtp"]})  # what a user does in n8n's editor
        await activate_filling_credentials(platform_client, flow, url, key)     # ... after the platform's 409

Behaviour kept from the real n8n (1.119 / 2.x): base `/api/v1`; `X-N8N-API-KEY` required (401
`{"message": ...}` otherwise); string ids; read-only fields (`active`, `id`, ...) and unknown settings
rejected with 400 on create; activation needs a trigger node and a free webhook path; a Webhook node is
served at `/webhook/{path}` (with a `webhookId`; else `/webhook/{workflowId}/{node name}/{path}`) only
while its workflow is active and after the activation gap, else 404 `{"message": "... not registered"}`;
each accepted webhook POST starts an execution (mode webhook) recorded with the data it received;
`GET /executions` filters by workflowId and status (running ones only with `status=running`), newest
first, `limit` (default 100, max 250) with an opaque `nextCursor`; `/rest/settings` tells `versionCli`.
As n8n 2.41 does, activation refuses (400, n8n's message listing node and credential type) a workflow
whose enabled, connected nodes lack a required credential (`REQUIRED_CREDENTIALS`, the node types the
templates use); a node has it when `node.credentials[type]` names an id (n8n checks no more at activation).
`GET /credentials/schema/{type}` answers n8n 2.41.1's schema for those types and `POST /credentials`
checks `data` against it with n8n's messages.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import string
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web
from multidict import CIMultiDict, MultiDict

from common.testing.servers import FakeServer

API_PREFIX = "/api/v1"
WEBHOOK_TYPE = "n8n-nodes-base.webhook"
NOT_TRIGGERS = {"n8n-nodes-base.manualTrigger"}
SPEC_ENV = "N8N_OPENAPI_SPEC"
READ_ONLY_WORKFLOW_FIELDS = ("id", "active", "createdAt", "updatedAt", "tags", "isArchived", "versionId")
# The credential each node type requires (n8n's node descriptions, `credentials[].required`; Slack's depends on
# its `authentication` parameter, default accessToken).
REQUIRED_CREDENTIALS: dict[str, Any] = {
    "n8n-nodes-base.emailSend": "smtp",
    "n8n-nodes-base.slack": lambda params: "slackOAuth2Api" if params.get("authentication") == "oAuth2"
    else "slackApi",
    "n8n-nodes-base.twilio": "twilioApi",
    "n8n-nodes-base.googleTasks": "googleTasksOAuth2Api",
    "n8n-nodes-base.googleCalendar": "googleCalendarOAuth2Api",
}
_S, _B, _N = {"type": "string"}, {"type": "boolean"}, {"type": "number"}
_DOMAINS = {"allowedHttpRequestDomains": {"type": "string", "enum": ["all", "domains", "none"]},
            "allowedDomains": _S}


def _oauth2_schema() -> dict[str, Any]:
    fields = {"serverUrl": _S, "clientId": _S, "clientSecret": _S, "sendAdditionalBodyProperties": _B,
              "additionalBodyProperties": {"type": "json"}, **_DOMAINS, "oauthTokenData": {"type": "json"},
              "customScopes": _B, "customScopesNotice": {"type": "notice"}, "enabledScopes": _S}
    return {"properties": fields, "required": []}


# GET /credentials/schema/{type} of n8n 2.41.1 (the Google ones less their allOf on useDynamicClientRegistration).
CREDENTIAL_SCHEMAS: dict[str, dict[str, Any]] = {name: {"additionalProperties": False, "type": "object"} | schema
                                                 for name, schema in {
    "smtp": {"properties": {"user": _S, "password": _S, "host": _S, "port": _N, "secure": _B,
                            "disableStartTls": _B, "hostName": _S}, "required": []},
    "slackApi": {"properties": {"accessToken": _S, "signatureSecret": _S, "notice": {"type": "notice"},
                                **_DOMAINS}, "required": ["accessToken"]},
    "slackOAuth2Api": _oauth2_schema(),
    "twilioApi": {"properties": {"authType": {"type": "string", "enum": ["authToken", "apiKey"]}, "accountSid": _S,
                                 "authToken": _S, "apiKeySid": _S, "apiKeySecret": _S, **_DOMAINS}, "required": []},
    "googleTasksOAuth2Api": _oauth2_schema(),
    "googleCalendarOAuth2Api": _oauth2_schema(),
    "httpHeaderAuth": {"properties": {"name": _S, "value": _S, "useCustomAuth": {"type": "notice"}, **_DOMAINS},
                       "required": []},
}.items()}


def default_spec_path() -> Path:
    """`$N8N_OPENAPI_SPEC`, else shared/specs/n8n/public-api-v1.yml beside the repository."""
    if os.environ.get(SPEC_ENV):
        return Path(os.environ[SPEC_ENV])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "specs" / "n8n" / "public-api-v1.yml"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"n8n's OpenAPI file not found: set {SPEC_ENV} or pass spec_path")


@cache
def _openapi(path: str) -> Any:
    import yaml
    from openapi_core import OpenAPI

    with open(path, encoding="utf-8") as f:
        return OpenAPI.from_dict(yaml.safe_load(f))


@dataclass
class _OpenAPIRequest:
    """What openapi-core reads from a request (its `Request` protocol)."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: Any

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # without the /api/v1 prefix for API calls
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None
    raw: bytes = b""
    at: float = field(default_factory=time.time)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(16))


def production_path(workflow_id: str, node: dict[str, Any]) -> str:
    path = str((node.get("parameters") or {}).get("path") or "").strip("/")
    if node.get("webhookId"):
        return path or str(node["webhookId"])
    return f"{workflow_id}/{quote(str(node.get('name', '')).lower(), safe='')}/{path}"


def dummy_credential_data(schema: dict[str, Any]) -> dict[str, Any]:
    """Values a credential of that schema accepts (n8n does not call the service when it activates)."""
    data: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        if prop.get("enum"):
            data[name] = prop["enum"][0]
        elif kind == "string":
            data[name] = "https://example.com" if "url" in name.lower() else f"dummy-{name}"
        elif kind == "number":
            data[name] = 1
        elif kind == "boolean":
            data[name] = False
    return data


async def fill_in_credentials(n8n_url: str, api_key: str, workflow_id: str,
                              needs: dict[str, list[str]]) -> dict[str, str]:
    """What the owner does in n8n's editor, through n8n's public API: creates a credential of each type named
    (`{node name: [credential type, ...]}`, as the platform's 409 lists them) with dummy values from the type's
    schema, attaches them to those nodes and saves the workflow. Returns {type: credential id}."""
    import httpx

    async with httpx.AsyncClient(base_url=n8n_url.rstrip("/") + API_PREFIX, headers={"X-N8N-API-KEY": api_key},
                                 timeout=30) as n8n:
        async def ok(response: Any) -> Any:
            assert response.is_success, (response.request.method, response.request.url, response.text)
            return response.json()

        made: dict[str, str] = {}
        for kind in sorted({k for kinds in needs.values() for k in kinds}):
            schema = await ok(await n8n.get(f"/credentials/schema/{kind}"))
            created = await ok(await n8n.post("/credentials", json={"name": f"Test {kind}", "type": kind,
                                                                    "data": dummy_credential_data(schema)}))
            made[kind] = created["id"]
        wf = await ok(await n8n.get(f"/workflows/{workflow_id}"))
        for node in wf["nodes"]:
            for kind in needs.get(node["name"], []):
                node.setdefault("credentials", {})[kind] = {"id": made[kind], "name": f"Test {kind}"}
        assert {n["name"] for n in wf["nodes"]} >= set(needs), (sorted(needs), wf["nodes"])
        await ok(await n8n.put(f"/workflows/{workflow_id}",
                               json={k: wf[k] for k in ("name", "nodes", "connections", "settings")}))
        return made


async def activate_filling_credentials(platform: Any, flow: dict[str, Any], n8n_url: str, api_key: str, *,
                                      also: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The owner's way to switch on a flow made from a template, through the platform's API (`platform`, an
    httpx client): activating answers 409 naming the nodes and credential types to fill in; they fill them in
    n8n (`fill_in_credentials`, plus `also`: credentials n8n does not insist on, such as an HTTP Request's)
    and activate again. Returns the activated flow."""
    activate = f"/api/platform/n8n/flows/{flow['id']}/activate"
    refused = await platform.post(activate)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["workflowId"] == flow["workflowId"] and problem["nodes"], problem
    needs = {n["node"]: n["credentialTypes"] for n in problem["nodes"]} | (also or {})
    await fill_in_credentials(n8n_url, api_key, flow["workflowId"], needs)
    activated = await platform.post(activate)
    assert activated.status_code == 200, activated.text
    assert activated.json()["active"] is True
    return dict(activated.json())


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"message": message, **extra}, status=status)


def _validation_message(exc: Exception) -> str:
    """Like express-openapi-validator: where, and the first schema error."""
    cause = exc.__cause__ or exc
    errors = getattr(cause, "schema_errors", None) or []
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in getattr(first, "absolute_path", ()))
        location = "request/body" + (f"/{where}" if where else "")
        if getattr(first, "validator", None) == "readOnly":
            return f"{location} is read-only"
        return f"{location} {str(first.message).splitlines()[0]}"
    return str(cause).splitlines()[0] if str(cause) else type(cause).__name__


class FakeN8n(FakeServer):
    def __init__(self, *, api_key: str | None = None, version: str = "1.119.0", spec_path: str | Path | None = None,
                 host: str = "127.0.0.1", activation_gap: float = 0.1) -> None:
        self.api_key = api_key or "n8n_api_" + secrets.token_hex(16)
        self.version = version
        self.spec_path = str(spec_path or default_spec_path())
        self.host = host
        self.activation_gap = activation_gap
        self.gap_requests = 0
        self.v2 = False
        self.v2_status = 404
        self.fail_api: tuple[int, str] | None = None
        self.fail_api_times: int | None = None  # fail only this many calls (None: all while fail_api is set)
        self.api_delay = 0.0
        self.execution_status = "success"
        self.workflows: dict[str, dict[str, Any]] = {}
        self.credentials: dict[str, dict[str, Any]] = {}
        self.executions: list[dict[str, Any]] = []
        self.calls: list[Call] = []
        self.webhook_calls: list[Call] = []
        self.invalid: list[tuple[Call, str]] = []  # API requests refused by the spec validation
        self._activated: dict[str, tuple[float, int]] = {}  # workflow id -> (loop time, 404s served since)
        self._next_execution = 1000

    # --- test helpers ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to normal behaviour (the data stays)."""
        self.v2, self.v2_status, self.fail_api, self.api_delay = False, 404, None, 0.0
        self.fail_api_times = None
        self.gap_requests, self.execution_status = 0, "success"

    def api_calls(self, method: str | None = None, path: str | None = None) -> list[Call]:
        return [c for c in self.calls if (method is None or c.method == method) and (path is None or c.path == path)]

    def add_workflow(self, body: dict[str, Any], *, active: bool = False) -> dict[str, Any]:
        """A workflow made in n8n itself (not through the API): no validation, any shape."""
        workflow_id = _new_id()
        now = _now()
        wf = {"id": workflow_id, "name": body.get("name", "My workflow"), "active": False, "isArchived": False,
              "createdAt": now, "updatedAt": now, "nodes": body.get("nodes", []),
              "connections": body.get("connections", {}), "settings": body.get("settings", {"executionOrder": "v1"}),
              "staticData": None, "tags": [], "versionId": str(uuid.uuid4()), "triggerCount": 0}
        self.workflows[workflow_id] = wf
        if active:
            self._set_active(wf, True)
            self._activated[workflow_id] = (0.0, self.gap_requests)
        return wf

    def add_execution(self, workflow_id: str, *, status: str = "success", mode: str = "webhook",
                      started_at: str | None = None, stopped_at: str | None = None,
                      data: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_execution += 1
        started = started_at or _now()
        execution = {"id": str(self._next_execution), "finished": status == "success", "mode": mode,
                     "retryOf": None, "retrySuccessId": None, "startedAt": started,
                     "stoppedAt": None if status in ("running", "new") else (stopped_at or _now()),
                     "workflowId": workflow_id, "waitTill": None, "customData": {}, "status": status,
                     "data": data or {"resultData": {"runData": {}}}}
        self.executions.append(execution)
        return execution

    def executions_of(self, workflow_id: str) -> list[dict[str, Any]]:
        return [e for e in self.executions if e["workflowId"] == workflow_id]

    # --- server ------------------------------------------------------------------------------------
    client_max_size = 16 * 1024 * 1024

    async def start(self) -> None:
        _openapi(self.spec_path)  # load (and fail) before serving
        await super().start()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._api)
        app.router.add_route("*", "/webhook/{tail:.*}", self._webhook)
        app.router.add_get("/rest/settings", self._settings)
        app.router.add_get("/", self._editor)
        app.router.add_get("/healthz", self._healthz)

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _settings(self, _: web.Request) -> web.Response:
        if self.v2:  # 2.x: the public settings no longer tell the version
            return web.json_response({"data": {"authCookie": {"secure": False}, "defaultLocale": "en"}})
        return web.json_response({"data": {"versionCli": self.version, "publicApi": {"enabled": True}}})

    async def _editor(self, _: web.Request) -> web.Response:
        sentry = base64.b64encode(json.dumps({"dsn": "", "environment": "development",
                                              "release": f"n8n@{self.version}"}).encode()).decode()
        meta = f'<meta name="n8n:config:sentry" content="{sentry}">' if self.v2 else ""
        return web.Response(text=f"<!DOCTYPE html><html><head>{meta}<title>n8n.io</title></head></html>",
                            content_type="text/html")

    # --- the public API ----------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
            if raw:
                return _error(400, "request/body must be JSON")
        path = "/" + request.match_info["tail"]
        call = Call(request.method, path, dict(request.query), {k.lower(): v for k, v in request.headers.items()},
                    body, raw)
        self.calls.append(call)
        await self._notify()
        key = request.headers.get("X-N8N-API-KEY")
        if not key:
            return _error(401, "'X-N8N-API-KEY' header required")
        if key != self.api_key:
            return _error(401, "unauthorized")
        if self.api_delay:
            await asyncio.sleep(self.api_delay)
        if self.fail_api is not None:
            failure = self.fail_api
            if self.fail_api_times is not None:
                self.fail_api_times -= 1
                if self.fail_api_times <= 0:
                    self.fail_api, self.fail_api_times = None, None
            return _error(*failure)
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if len(parts) == 3 and parts[0] == "workflows" and parts[2] in ("publish", "unpublish"):
            # n8n 2.x only, not in the 1.x OpenAPI file: no body, nothing to validate but the key.
            if not self.v2:
                return _error(404, "not found")
            if raw:
                return _error(400, "request/body must be empty")
            return self._activate(parts[1], parts[2] == "publish")
        problem = self._validate(request, raw)
        if problem is not None:
            self.invalid.append((call, problem))
            return _error(404 if problem == "not found" else 400, problem)
        return self._route(request.method, parts, body, request.query)

    def _validate(self, request: web.Request, raw: bytes) -> str | None:
        from openapi_core.datatypes import RequestParameters
        from openapi_core.templating.paths.exceptions import PathNotFound

        req = _OpenAPIRequest(
            host_url=f"http://{request.host}", path=request.path, method=request.method.lower(), body=raw or None,
            content_type=(request.content_type or "application/json") if raw else "application/json",
            parameters=RequestParameters(query=MultiDict(request.query), header=CIMultiDict(request.headers),
                                         cookie=MultiDict(request.cookies), path={}))
        try:
            _openapi(self.spec_path).validate_request(req)
        except PathNotFound:
            return "not found"
        except Exception as exc:
            if type(exc).__name__ in ("OperationNotFound", "PathNotFound"):
                return "not found"
            return _validation_message(exc)
        return None

    def _route(self, method: str, parts: list[str], body: Any, query: Any) -> web.Response:
        if parts == ["workflows"] and method == "POST":
            return self._create_workflow(body)
        if parts == ["workflows"] and method == "GET":
            items = sorted(self.workflows.values(), key=lambda w: w["createdAt"], reverse=True)
            if "active" in query:
                items = [w for w in items if w["active"] == (query["active"] == "true")]
            return self._page(items, query)
        if len(parts) >= 2 and parts[0] == "workflows":
            wf = self.workflows.get(parts[1])
            if wf is None:
                return _error(404, "Not Found")
            if len(parts) == 2 and method == "GET":
                return web.json_response(wf)
            if len(parts) == 2 and method == "DELETE":
                del self.workflows[parts[1]]
                self._activated.pop(parts[1], None)
                return web.json_response(wf)
            if len(parts) == 2 and method == "PUT":
                wf.update({k: body[k] for k in ("name", "nodes", "connections", "settings") if k in body})
                wf["updatedAt"] = _now()
                return web.json_response(wf)
            if len(parts) == 3 and parts[2] in ("activate", "deactivate") and method == "POST":
                if self.v2:
                    return _error(self.v2_status, "not found" if self.v2_status == 404 else "Method Not Allowed")
                return self._activate(parts[1], parts[2] == "activate")
        if parts[0] == "credentials":
            return self._credentials_route(method, parts, body)
        if parts == ["executions"] and method == "GET":
            return self._list_executions(query)
        if len(parts) == 2 and parts[0] == "executions" and method == "GET":
            found = [e for e in self.executions if e["id"] == parts[1]]
            if not found:
                return _error(404, "Not Found")
            return web.json_response(self._execution_view(found[0], query.get("includeData") == "true"))
        return _error(404, "not found")

    def _create_workflow(self, body: dict[str, Any]) -> web.Response:
        for name in READ_ONLY_WORKFLOW_FIELDS:  # the spec catches most; n8n refuses all of them
            if name in body:
                return _error(400, f"request/body/{name} is read-only")
        wf = self.add_workflow(body)
        return web.json_response(wf)

    def _set_active(self, wf: dict[str, Any], active: bool) -> None:
        wf["active"] = active
        wf["updatedAt"] = _now()
        if active:
            wf["activeVersionId"] = wf["versionId"]
        else:
            wf.pop("activeVersionId", None)

    def _activate(self, workflow_id: str, active: bool) -> web.Response:
        wf = self.workflows.get(workflow_id)
        if wf is None:
            return _error(404, "Not Found")
        if active:
            nodes = [n for n in wf["nodes"] if not n.get("disabled")]
            triggers = [n for n in nodes if n.get("type") == WEBHOOK_TYPE
                        or (str(n.get("type", "")).endswith("Trigger") and n.get("type") not in NOT_TRIGGERS)]
            if not triggers:
                return _error(400, "Workflow has no node to start the workflow - at least one trigger, poller or "
                                   "webhook node is required")
            issues = self._configuration_issues(wf)
            if issues:
                return _error(400, issues)
            mine = {production_path(workflow_id, n) for n in nodes if n.get("type") == WEBHOOK_TYPE}
            for other in self.workflows.values():
                if other["id"] != workflow_id and other["active"]:
                    theirs = {production_path(other["id"], n) for n in other["nodes"] if n.get("type") == WEBHOOK_TYPE}
                    if mine & theirs:
                        return _error(400, f"There is a conflict with one of the webhooks: the path "
                                           f"{sorted(mine & theirs)[0]!r} is already used by workflow {other['id']}")
            if not wf["active"]:
                self._activated[workflow_id] = (asyncio.get_running_loop().time(), 0)
        else:
            self._activated.pop(workflow_id, None)
        self._set_active(wf, active)
        return web.json_response(wf)

    def _configuration_issues(self, wf: dict[str, Any]) -> str | None:
        """n8n's refusal to publish a workflow whose enabled, connected nodes lack a required credential."""
        targets = {t["node"] for outs in wf["connections"].values() for lists in outs.values() for out in lists
                   for t in out or []}
        found = []
        for n in wf["nodes"]:
            required = REQUIRED_CREDENTIALS.get(str(n.get("type")))
            connected = wf["connections"].get(n.get("name")) or n.get("name") in targets
            if required is None or n.get("disabled") or not connected:
                continue
            kind = required(n.get("parameters") or {}) if callable(required) else required
            given = (n.get("credentials") or {}).get(kind)
            if not given:
                found.append(f'Node "{n["name"]}":\n  - Missing required credential: {kind}')
            elif not given.get("id"):
                found.append(f'Node "{n["name"]}":\n  - Credential not configured: {kind}')
        if not found:
            return None
        return (f"Cannot publish workflow: {len(found)} node{'' if len(found) == 1 else 's'} have configuration "
                "issues:\n\n" + "\n\n".join(found))

    # --- credentials -------------------------------------------------------------------------------
    def _credentials_route(self, method: str, parts: list[str], body: Any) -> web.Response:
        if parts == ["credentials"] and method == "POST":
            schema = CREDENTIAL_SCHEMAS.get(body["type"])
            if schema is None:
                return _error(400, "req.body.type is not a known type")
            problem = _credential_data_problem(schema, body["data"])
            if problem:
                return _error(400, f"request.body.data {problem}")
            now = _now()
            credential = {"id": _new_id(), "name": body["name"], "type": body["type"], "isManaged": False,
                          "createdAt": now, "updatedAt": now}
            self.credentials[credential["id"]] = credential | {"data": body["data"]}
            return web.json_response(credential)
        if len(parts) == 3 and parts[1] == "schema" and method == "GET":
            if parts[2] not in CREDENTIAL_SCHEMAS:
                return _error(404, "Not Found")
            return web.json_response(CREDENTIAL_SCHEMAS[parts[2]])
        if len(parts) == 2 and method == "DELETE":
            found = self.credentials.pop(parts[1], None)
            if found is None:
                return _error(404, "Not Found")
            return web.json_response({k: v for k, v in found.items() if k != "data"})
        return _error(404, "not found")

    # --- executions --------------------------------------------------------------------------------
    def _execution_view(self, execution: dict[str, Any], include_data: bool) -> dict[str, Any]:
        view = dict(execution)
        if not include_data:
            view.pop("data", None)
        return view

    def _list_executions(self, query: Any) -> web.Response:
        items = list(self.executions)
        if query.get("workflowId"):
            items = [e for e in items if e["workflowId"] == query["workflowId"]]
        status = query.get("status")
        items = [e for e in items if e["status"] == status] if status else [e for e in items if e["status"] != "running"]
        items.sort(key=lambda e: int(e["id"]), reverse=True)
        include = query.get("includeData") == "true"
        return self._page(items, query, view=lambda e: self._execution_view(e, include))

    def _page(self, items: list[dict[str, Any]], query: Any, view: Any = None) -> web.Response:
        limit = int(float(query.get("limit", 100)))
        start = 0
        if query.get("cursor"):
            try:
                decoded = json.loads(base64.b64decode(query["cursor"]))
                start = int(decoded["offset"])
            except (ValueError, KeyError, TypeError):
                return _error(400, "An invalid cursor was provided")
        page = items[start:start + limit]
        more = start + limit < len(items)
        cursor = base64.b64encode(json.dumps({"offset": start + limit, "limit": limit}).encode()).decode()
        return web.json_response({"data": [view(i) if view else i for i in page],
                                  "nextCursor": cursor if more else None})

    # --- production webhooks -----------------------------------------------------------------------
    def _registered(self, path: str, method: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        for wf in self.workflows.values():
            if not wf["active"]:
                continue
            for n in wf["nodes"]:
                if n.get("type") != WEBHOOK_TYPE or n.get("disabled"):
                    continue
                wanted = str((n.get("parameters") or {}).get("httpMethod") or "GET").upper()
                if production_path(wf["id"], n) == path and wanted == method:
                    return wf, n
        return None

    async def _webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else {}
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        path = request.match_info["tail"].strip("/")
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.webhook_calls.append(Call(request.method, path, dict(request.query), headers, body, raw))
        try:
            found = self._registered(path, request.method)
            if found is not None:
                wf, node = found
                since, served = self._activated.get(wf["id"], (0.0, self.gap_requests))
                if asyncio.get_running_loop().time() - since < self.activation_gap or served < self.gap_requests:
                    self._activated[wf["id"]] = (since, served + 1)
                    found = None  # registering: n8n has not added the production webhook yet
            if found is None:
                return _error(404, f'The requested webhook "{request.method} {path}" is not registered.',
                              code=404, hint="The workflow must be active for a production URL to run successfully.")
            item = {"json": {"headers": headers, "params": {}, "query": dict(request.query), "body": body,
                             "webhookUrl": str(request.url), "executionMode": "production"}}
            started = _now()
            self.add_execution(wf["id"], status=self.execution_status, mode="webhook", started_at=started, data={
                "resultData": {"runData": {node["name"]: [{"startTime": int(time.time() * 1000), "executionTime": 1,
                                                           "data": {"main": [[item]]}}]},
                               "lastNodeExecuted": node["name"]}})
            return web.json_response({"message": "Workflow was started"})
        finally:
            await self._notify()


def _credential_data_problem(schema: dict[str, Any], data: Any) -> str | None:
    """What n8n says of credential data its type's schema refuses (its jsonschema messages), else None."""
    import jsonschema

    checker = jsonschema.Draft7Validator.TYPE_CHECKER.redefine_many(
        {"json": lambda _, __: True, "notice": lambda _, __: True})
    validator = jsonschema.validators.extend(jsonschema.Draft7Validator, type_checker=checker)(schema)
    error = next(iter(validator.iter_errors(data)), None)
    if error is None:
        return None
    if error.validator == "required":
        return f'requires property "{str(error.message).split(chr(39))[1]}"'
    if error.validator == "additionalProperties":
        extra = sorted(set(data) - set(schema.get("properties") or {}))
        return f'is not allowed to have the additional property "{extra[0]}"'
    if error.validator == "type":
        return f"is not of a type(s) {error.validator_value}"
    return str(error.message)


def fake_n8n(**kwargs: Any) -> FakeN8n:
    """`async with fake_n8n() as fake:` n8n's public API and webhook triggers, served while inside."""
    return FakeN8n(**kwargs)
