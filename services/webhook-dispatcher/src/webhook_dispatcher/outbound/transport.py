"""The HTTP hot path: one shared aiohttp session whose connector goes through the SSRF guard.

Every attempt: the URL is checked by the security module (`check_target`: syntax, scheme, every
DNS answer against the policy; cached for `webhook_target_cache_seconds`, which only ever pins an
address that passed), the request is made inside `pinned(checked)` on a `PinnedConnector`, so the
connection goes to a checked address and the peer of every (new or pooled) connection is checked
again. TLS verifies against certifi + system CAs + `WEBHOOK_CA_BUNDLE`; redirects are never
followed; the whole attempt is bounded by `WEBHOOK_TIMEOUT_SECONDS`. The outcome is an
`AttemptResult`, never an exception.

Trusted targets (`trusted=True`: the webhook URLs of n8n flows, built from the n8n URL the platform
owner configured, typically http://127.0.0.1:5678) skip the subscriber SSRF policy: they go through a
second session with a plain connector. Only http(s) URLs, never redirects, never a proxy, same timeout.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import certifi
import yarl

from webhook_dispatcher.config import Settings
from webhook_dispatcher.security import (
    AllowList,
    CheckedTarget,
    HostDoesNotResolve,
    PinnedConnector,
    UnsafeURL,
    WebhookPolicy,
    check_target,
    pinned,
    policy_denial,
)

logger = logging.getLogger("webhook_dispatcher.transport")

MAX_RECORDED_HEADERS = 64
MAX_HEADER_VALUE = 1000


class ErrorClass:
    TIMEOUT = "timeout"
    CONNECT = "connect"
    TLS = "tls"
    DNS = "dns"
    POLICY = "policy"
    HTTP = "http"  # an answer that is not 2xx
    PROTOCOL = "protocol"  # the answer could not be read


@dataclass
class AttemptResult:
    started_at: datetime
    duration_ms: int
    url: str
    request_headers: dict[str, str]
    target_ip: str | None = None
    status_code: int | None = None
    response_headers: dict[str, str] | None = None
    response_body: str | None = None
    error_class: str | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds, when the answer carried a usable Retry-After

    @property
    def success(self) -> bool:
        return self.error_class is None and self.status_code is not None and 200 <= self.status_code < 300

    def describe(self) -> str:
        if self.error_class in (None, ErrorClass.HTTP) and self.status_code is not None:
            return f"HTTP {self.status_code}"
        return f"{self.error_class}: {self.error}" if self.error else str(self.error_class)


_PEER: ContextVar[list[str] | None] = ContextVar("webhook_dispatcher_trusted_peer", default=None)


class PeerRecordingConnector(aiohttp.TCPConnector):
    """A plain connector (trusted targets only) that tells the attempt which address it connected to."""

    async def connect(self, req: Any, traces: Any, timeout: Any) -> aiohttp.connector.Connection:
        connection = await super().connect(req, traces, timeout)
        transport = connection.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        holder = _PEER.get()
        if holder is not None and peer:
            holder.append(str(peer[0]))
        return connection


def policy_from_settings(settings: Settings) -> WebhookPolicy:
    return WebhookPolicy(allow_http=settings.webhook_allow_http,
                         allow=AllowList.parse(settings.webhook_allowed_private_cidrs))


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certifi.where())
    ctx.load_default_certs()
    if ca_bundle:
        ctx.load_verify_locations(cafile=ca_bundle)
    return ctx


# Answers that mean "not now": their Retry-After, when given, pushes the next attempt back.
BACK_OFF_STATUSES = frozenset({429, 502, 503, 504})


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _classify(exc: BaseException) -> str:
    if policy_denial(exc) is not None:
        return ErrorClass.POLICY
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for e in chain:
        if isinstance(e, HostDoesNotResolve):
            return ErrorClass.DNS
        if isinstance(e, UnsafeURL):
            return ErrorClass.POLICY
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return ErrorClass.TIMEOUT
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ErrorClass.DNS
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError | ssl.SSLError):
        return ErrorClass.TLS
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientOSError | aiohttp.ServerDisconnectedError
                  | ConnectionError | OSError):
        return ErrorClass.CONNECT
    return ErrorClass.PROTOCOL


def clean(text: str) -> str:
    """PostgreSQL text cannot hold NUL: whatever a subscriber answers must still be recordable."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _describe(exc: BaseException) -> str:
    denial = policy_denial(exc)
    if denial is not None:
        return clean(denial.reason)
    text = str(exc) or type(exc).__name__
    return clean(f"{type(exc).__name__}: {text}"[:MAX_HEADER_VALUE])


def _headers(raw: aiohttp.typedefs.LooseHeaders | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in list((raw or {}).items())[:MAX_RECORDED_HEADERS]:  # type: ignore[union-attr]
        k = clean(str(key).lower())
        out[k] = clean(out[k] + ", " + str(value) if k in out else str(value))[:MAX_HEADER_VALUE]
    return out


class WebhookTransport:
    def __init__(self, settings: Settings, policy: WebhookPolicy | None = None) -> None:
        self.settings = settings
        self.policy = policy or policy_from_settings(settings)
        self.ssl = ssl_context(settings.webhook_ca_bundle)
        self.timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds)
        self.body_limit = settings.webhook_response_body_bytes
        self.target_cache_seconds = settings.webhook_target_cache_seconds
        self._session: aiohttp.ClientSession | None = None
        self._trusted_session: aiohttp.ClientSession | None = None
        self._checked: dict[str, tuple[float, CheckedTarget]] = {}

    async def check(self, url: str, *, fresh: bool = False) -> CheckedTarget:
        """Parse the URL and check it and every address its host resolves to; raises `UnsafeURL`."""
        now = time.monotonic()
        cached = None if fresh else self._checked.get(url)
        if cached is not None and cached[0] > now:
            return cached[1]
        checked = await check_target(url, self.policy)
        if self.target_cache_seconds > 0:
            if len(self._checked) > 10_000:
                self._checked.clear()
            self._checked[url] = (now + self.target_cache_seconds, checked)
        return checked

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = PinnedConnector(
                self.policy,
                ssl=self.ssl,
                limit=0,  # per-endpoint caps are the worker's lanes'; one endpoint never starves another here
                limit_per_host=0,
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
                raise_for_status=False,
                trust_env=False,  # never through a proxy: the connection must go to the checked address
            )
        return self._session

    @property
    def trusted_session(self) -> aiohttp.ClientSession:
        """For the owner's own n8n only (see the module docstring): no SSRF policy, nothing else relaxed."""
        if self._trusted_session is None or self._trusted_session.closed:
            connector = PeerRecordingConnector(ssl=self.ssl, limit=0, limit_per_host=0, keepalive_timeout=30)
            self._trusted_session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",), raise_for_status=False, trust_env=False)
        return self._trusted_session

    async def close(self) -> None:
        for session in (self._session, self._trusted_session):
            if session is not None and not session.closed:
                await session.close()

    async def post(self, url: str, body: bytes, headers: dict[str, str], *, trusted: bool = False) -> AttemptResult:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        result = AttemptResult(started_at=started, duration_ms=0, url=url, request_headers=dict(headers))
        try:
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                if trusted:
                    await self._post_trusted(url, body, headers, result)
                else:
                    await self._post(url, body, headers, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is a recorded outcome, never an exception
            got_answer = result.status_code is not None
            result.error_class = _classify(exc)
            result.error = _describe(exc)
            if got_answer and result.error_class != ErrorClass.TIMEOUT:
                result.error_class = ErrorClass.PROTOCOL
        result.duration_ms = int((time.perf_counter() - t0) * 1000)
        return result

    async def _post(self, url: str, body: bytes, headers: dict[str, str], result: AttemptResult) -> None:
        checked = await self.check(url)
        result.target_ip = checked.ip
        with pinned(checked) as pin:
            try:
                async with self.session.post(checked.url, data=body, headers=headers,
                                             allow_redirects=False) as resp:
                    result.target_ip = pin.peer_ip or checked.ip
                    await self._read(resp, result)
            finally:
                result.target_ip = pin.peer_ip or result.target_ip

    async def _post_trusted(self, url: str, body: bytes, headers: dict[str, str], result: AttemptResult) -> None:
        target = yarl.URL(url)
        if target.scheme not in ("http", "https") or not target.host:
            raise UnsafeURL(f"not an http(s) URL: {url[:200]}")
        peers: list[str] = []
        token = _PEER.set(peers)
        try:
            async with self.trusted_session.post(target, data=body, headers=headers,
                                                 allow_redirects=False) as resp:
                result.target_ip = peers[-1] if peers else None
                await self._read(resp, result)
        finally:
            _PEER.reset(token)

    async def _read(self, resp: aiohttp.ClientResponse, result: AttemptResult) -> None:
        result.status_code = resp.status
        result.response_headers = _headers(resp.headers)
        raw = await _read_limited(resp, self.body_limit)
        result.response_body = clean(raw.decode("utf-8", errors="replace"))
        if not (200 <= resp.status < 300):
            result.error_class = ErrorClass.HTTP
            result.error = clean(f"HTTP {resp.status} {resp.reason or ''}".strip()[:MAX_HEADER_VALUE])
            if resp.status in BACK_OFF_STATUSES:
                result.retry_after = parse_retry_after(resp.headers.get("Retry-After"))


async def _read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most `limit` bytes of the body; a longer body is cut and its connection dropped."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await resp.content.read(limit - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    if not resp.content.at_eof():
        resp.close()
    return b"".join(chunks)
