"""n8n's public REST API (v1), as far as the bridge uses it (shared/specs: the contract notes win over the spec).

    base `{n8n}/api/v1`, header `X-N8N-API-KEY`, errors `{"message": ...}`, ids are strings.

Failures are typed so the API can say why: `N8nUnreachable` (no connection: 502), `N8nTimeout` (no answer
within `N8N_TIMEOUT_SECONDS`: 504), `N8nError` (n8n answered non-2xx: its status and message). The n8n URL is
the platform owner's own configuration (often http on loopback), so the subscriber SSRF policy does not
apply here; redirects are not followed and no proxy from the environment is used.

Calls that may be repeated safely (reads, delete, activate/deactivate) are retried through the platform's
one policy for outside APIs (`common.retrying`) when n8n is unreachable or answers 429/5xx, honouring its
`Retry-After`; a timeout is not retried (the caller has waited long enough), nor is creating a workflow
(a repeat could create it twice).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from common.retrying import RETRYABLE_STATUSES, RetryableCall, outbound_retrying, retry_after_seconds

API_PREFIX = "/api/v1"
API_KEY_HEADER = "X-N8N-API-KEY"
MAX_MESSAGE = 4000  # n8n's refusal to activate lists every node not set up (n8n/readiness.py reads it)
_SENTRY_META = re.compile(r'<meta\s+name="n8n:config:sentry"\s+content="([A-Za-z0-9+/=]{1,4000})"')


class N8nProblem(Exception):
    """Calling n8n failed; `detail` says why, in words for the caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class N8nUnreachable(N8nProblem, RetryableCall):
    def __init__(self, detail: str) -> None:
        N8nProblem.__init__(self, detail)
        self.retry_after, self.status = None, None


class N8nTimeout(N8nProblem):
    pass


class N8nError(N8nProblem):
    def __init__(self, status: int, message: str, method: str, path: str) -> None:
        super().__init__(f"n8n answered {status} to {method} {path}: {message}")
        self.status = status
        self.message = message


class N8nBusy(N8nError, RetryableCall):
    """n8n answered 429 or 5xx: worth asking again (after its Retry-After, when it sent one)."""

    def __init__(self, status: int, message: str, method: str, path: str, retry_after: float | None) -> None:
        N8nError.__init__(self, status, message, method, path)
        self.retry_after = retry_after


def message_of(response: httpx.Response) -> str:
    """n8n's `{"message": ...}`, else the start of the body, else the reason phrase."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return body["message"][:MAX_MESSAGE]
    text = response.text.strip()
    return (text[:MAX_MESSAGE] if text else response.reason_phrase) or f"HTTP {response.status_code}"


def segment(value: str) -> str:
    """One path segment (a workflow id): nothing in it can change the path."""
    return quote(value, safe="")


def webhook_url(base_url: str, path: str) -> str:
    """The production URL of a Webhook trigger: `{n8n}/webhook/{path}` (served only while active)."""
    return f"{base_url.rstrip('/')}/webhook/{quote(path.strip('/'), safe='/-_.~')}"


@dataclass
class Probe:
    """What `/integrations/n8n/test` reports."""

    reachable: bool
    key_accepted: bool | None
    status_code: int | None
    detail: str
    version: str | None
    duration_ms: int


class N8nClient:
    def __init__(self, base_url: str, api_key: str, *, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, follow_redirects=False,
                                       trust_env=False, headers={API_KEY_HEADER: api_key,
                                                                 "accept": "application/json"})

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                    json: Any = None, api: bool = True) -> httpx.Response:
        url = (API_PREFIX + path) if api else path
        try:
            return await self._http.request(method, url, params=params, json=json)
        except httpx.TimeoutException:
            raise N8nTimeout(f"n8n at {self.base_url} did not answer {method} {url} within "
                             f"{self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise N8nUnreachable(f"n8n at {self.base_url} is unreachable: {reason}"[:1000]) from None

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      json: Any = None, idempotent: bool = True) -> Any:
        """One call to the public API; repeated (see the module docstring) only when `idempotent`."""
        retrying = outbound_retrying(attempts=3 if idempotent else 1, max_seconds=2 * self.timeout,
                                     initial=0.2, max_wait=2.0)
        async for attempt in retrying:
            with attempt:
                return await self._request_once(method, path, params=params, json=json)

    async def _request_once(self, method: str, path: str, *, params: dict[str, Any] | None,
                            json: Any) -> Any:
        response = await self._send(method, path, params=params, json=json)
        if not response.is_success:
            if response.status_code in RETRYABLE_STATUSES:
                raise N8nBusy(response.status_code, message_of(response), method, API_PREFIX + path,
                              retry_after_seconds(response.headers.get("retry-after")))
            raise N8nError(response.status_code, message_of(response), method, API_PREFIX + path)
        try:
            return response.json()
        except ValueError:
            raise N8nError(response.status_code, "the answer is not JSON", method, API_PREFIX + path) from None

    # --- workflows -------------------------------------------------------------------------------
    async def create_workflow(self, workflow: dict[str, Any]) -> dict[str, Any]:
        return _object(await self.request("POST", "/workflows", json=workflow, idempotent=False))

    async def get_workflow(self, workflow_id: str) -> dict[str, Any]:
        return _object(await self.request("GET", f"/workflows/{segment(workflow_id)}"))

    async def delete_workflow(self, workflow_id: str) -> None:
        await self.request("DELETE", f"/workflows/{segment(workflow_id)}")

    async def set_active(self, workflow_id: str, active: bool) -> dict[str, Any]:
        """POST /activate (/deactivate); n8n 2.x deprecates them for /publish (/unpublish): when the first
        answers 404 or 405, the second is tried. Returns n8n's answer (the workflow)."""
        verb, fallback = ("activate", "publish") if active else ("deactivate", "unpublish")
        base = f"/workflows/{segment(workflow_id)}"
        try:
            return _object(await self.request("POST", f"{base}/{verb}"))
        except N8nError as first:
            if first.status not in (404, 405):
                raise
            try:
                return _object(await self.request("POST", f"{base}/{fallback}"))
            except N8nError as second:
                raise (first if second.status in (404, 405) else second) from None

    # --- executions ------------------------------------------------------------------------------
    async def list_executions(self, *, workflow_id: str, status: str | None, limit: int, cursor: str | None,
                              include_data: bool) -> dict[str, Any]:
        params: dict[str, Any] = {"workflowId": workflow_id, "limit": limit,
                                  "includeData": "true" if include_data else "false"}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        return _object(await self.request("GET", "/executions", params=params))

    # --- connection test -------------------------------------------------------------------------
    async def probe(self) -> Probe:
        """Reachable? Key accepted? (GET /workflows?limit=1 with the key.) Version when n8n tells it."""
        t0 = time.perf_counter()

        def took() -> int:
            return int((time.perf_counter() - t0) * 1000)

        try:
            response = await self._send("GET", "/workflows", params={"limit": 1})
        except N8nProblem as exc:
            return Probe(False, None, None, exc.detail, None, took())
        status = response.status_code
        if response.is_success:
            verdict = Probe(True, True, status, "n8n is reachable and accepted the API key", None, took())
        elif status in (401, 403):
            verdict = Probe(True, False, status, f"n8n is reachable but rejected the API key ({status}: "
                            f"{message_of(response)})", None, took())
        elif status == 404:
            verdict = Probe(True, None, status, f"{self.base_url} answered 404 to the public API "
                            f"({API_PREFIX}/workflows): not an n8n URL, or n8n's public API is disabled", None,
                            took())
        else:
            verdict = Probe(True, None, status, f"n8n answered {status}: {message_of(response)}", None, took())
        verdict.version = await self.version()
        verdict.duration_ms = took()
        return verdict

    async def version(self) -> str | None:
        """n8n's version, when it tells without a login; None otherwise.

        n8n 1.x: the public front-end settings, `GET /rest/settings` -> `data.versionCli`. n8n 2.x no longer
        puts it there; its editor page does, in `<meta name="n8n:config:sentry">` (base64 JSON whose
        `release` is `n8n@<version>`)."""
        try:
            response = await self._send("GET", "/rest/settings", api=False)
            data = response.json().get("data") if response.is_success else None
            value = data.get("versionCli") if isinstance(data, dict) else None
            if isinstance(value, str) and value:
                return value[:50]
        except (N8nProblem, ValueError, AttributeError):
            pass
        try:
            response = await self._send("GET", "/", api=False)
        except N8nProblem:
            return None
        found = _SENTRY_META.search(response.text[:262_144]) if response.is_success else None
        if found is None:
            return None
        try:
            release = json.loads(base64.b64decode(found.group(1))).get("release")
        except (ValueError, AttributeError):
            return None
        if isinstance(release, str) and release.startswith("n8n@") and len(release) > 4:
            return release[4:54]
        return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@asynccontextmanager
async def connect(base_url: str, api_key: str, *, timeout: float) -> AsyncIterator[N8nClient]:
    client = N8nClient(base_url, api_key, timeout=timeout)
    try:
        yield client
    finally:
        await client.close()
