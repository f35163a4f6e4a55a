"""A local HTTPS webhook receiver for tests: a real TLS server (trustme CA) that records every request.

    async with webhook_receiver() as receiver:          # https://127.0.0.1:<port>, CA in receiver.ca_bundle_path
        hook = receiver.hook()                           # 200 to events, echoes the verification challenge
        hook = receiver.hook(statuses=[503, 503, 200])   # one status per request (last one repeats)
        hook = receiver.hook(status=410)                 # always 410
        hook = receiver.hook(status=429, retry_after="1")
        hook = receiver.hook(delay=2.0)                  # answer after 2 s (hang: a large delay)
        hook = receiver.hook(challenge="none")           # do not echo: verification fails
        hook.url                                         # give it to the dispatcher
        await hook.wait_for(lambda h: len(h.events()) >= 3, timeout=10)
        hook.requests / hook.events() / hook.verifications()

Each hook is a path of its own (`/hooks/<id>`), so tests sharing one receiver never see each
other's requests. Verification requests (JSON body with `"event": "webhook.verification"`) are
answered by the `challenge` mode; every other request by `statuses` / `status`. Run the dispatcher
with `WEBHOOK_ALLOWED_PRIVATE_CIDRS=127.0.0.1/32` and `WEBHOOK_CA_BUNDLE=receiver.ca_bundle_path`.
`tls=False` gives a plain http receiver (for `WEBHOOK_ALLOW_HTTP`).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from common.testing.servers import FakeServer

ChallengeMode = Literal["json", "text", "wrong", "none"]


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    received_at: float  # time.time()
    peer: str | None
    event: str | None = None  # the body's "event", when it is a JSON object with one

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Hook:
    """One receiving URL with its own behaviour and request log."""

    receiver: WebhookReceiver
    id: str
    statuses: list[int]
    retry_after: str | None = None
    delay: float = 0.0
    challenge: ChallengeMode = "json"
    response_body: bytes = b"ok"
    response_headers: dict[str, str] = field(default_factory=dict)
    requests: list[ReceivedRequest] = field(default_factory=list)
    _served: int = 0  # non-verification requests answered so far
    _verifications: int = 0
    _in_flight: int = 0
    max_in_flight: int = 0

    @property
    def path(self) -> str:
        return f"/hooks/{self.id}"

    @property
    def url(self) -> str:
        return f"{self.receiver.url}{self.path}"

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def events(self) -> list[ReceivedRequest]:
        """Requests other than verification challenges."""
        return [r for r in self.requests if r.event != "webhook.verification"]

    @property
    def event_count(self) -> int:
        return len(self.requests) - self._verifications

    def verifications(self) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.event == "webhook.verification"]

    def set_behaviour(self, *, status: int | None = None, statuses: Sequence[int] | None = None,
                      retry_after: str | None = None, delay: float | None = None,
                      challenge: ChallengeMode | None = None) -> None:
        """Change how the hook answers from now on (the status sequence starts again)."""
        if status is not None or statuses is not None:
            self.statuses = list(statuses) if statuses is not None else [status or 200]
            self._served = 0
        if retry_after is not None:
            self.retry_after = retry_after
        if delay is not None:
            self.delay = delay
        if challenge is not None:
            self.challenge = challenge

    async def wait_for(self, predicate: Callable[[Hook], bool], timeout: float = 10.0) -> None:
        await self.receiver.wait_for(lambda: predicate(self), timeout)

    async def _answer(self, request: ReceivedRequest) -> web.Response:
        if request.event == "webhook.verification":
            return self._challenge(request)
        index = min(self._served, len(self.statuses) - 1)
        self._served += 1
        status = self.statuses[index]
        headers = dict(self.response_headers)
        if self.retry_after is not None and not 200 <= status < 300:
            headers["Retry-After"] = self.retry_after
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=status, body=self.response_body, headers=headers)

    def _challenge(self, request: ReceivedRequest) -> web.Response:
        try:
            challenge = request.json()["data"]["challenge"]
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400, text="no challenge")
        if self.challenge == "json":
            return web.json_response({"challenge": challenge})
        if self.challenge == "text":
            return web.Response(text=challenge, content_type="text/plain")
        if self.challenge == "wrong":
            return web.json_response({"challenge": "not-" + challenge})
        return web.Response(text="ok")


def _event_of(body: bytes) -> str | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    event = value.get("event") if isinstance(value, dict) else None
    return event if isinstance(event, str) else None


class WebhookReceiver(FakeServer):
    def __init__(self, *, tls: bool = True, host: str = "127.0.0.1") -> None:
        self.tls = tls
        self.host = host
        self.hooks: dict[str, Hook] = {}
        self.unrouted: list[ReceivedRequest] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="webhook-receiver-")
        self.ca_bundle_path: str | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def hook(self, *, status: int = 200, statuses: Sequence[int] | None = None, retry_after: str | None = None,
             delay: float = 0.0, challenge: ChallengeMode = "json", response_body: bytes = b"ok",
             response_headers: dict[str, str] | None = None) -> Hook:
        hook = Hook(self, uuid.uuid4().hex, list(statuses) if statuses else [status], retry_after=retry_after,
                    delay=delay, challenge=challenge, response_body=response_body,
                    response_headers=dict(response_headers or {}))
        self.hooks[hook.id] = hook
        return hook

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        received = ReceivedRequest(request.method, request.path, {k.lower(): v for k, v in request.headers.items()},
                                   body, time.time(), peer[0] if peer else None, _event_of(body))
        hook_id = request.path.removeprefix("/hooks/").split("/")[0] if request.path.startswith("/hooks/") else ""
        hook = self.hooks.get(hook_id)
        if hook is None:
            self.unrouted.append(received)
            await self._notify()
            return web.Response(status=404, text="no such hook")
        hook.requests.append(received)
        if received.event == "webhook.verification":
            hook._verifications += 1
        hook._in_flight += 1
        hook.max_in_flight = max(hook.max_in_flight, hook._in_flight)
        await self._notify()
        try:
            return await hook._answer(received)
        finally:
            hook._in_flight -= 1
            await self._notify()

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        path = Path(self._tmp.name) / "ca.pem"
        ca.cert_pem.write_to_path(str(path))
        self.ca_bundle_path = str(path)
        return ctx

    client_max_size = 16 * 1024 * 1024

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    async def stop(self) -> None:
        await super().stop()
        self._tmp.cleanup()


def webhook_receiver(*, tls: bool = True) -> WebhookReceiver:
    """`async with webhook_receiver() as receiver:` a subscriber (HTTPS by default), served while inside."""
    return WebhookReceiver(tls=tls)
