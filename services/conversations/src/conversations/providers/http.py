"""One HTTP session for calls to the providers and n8n flows, and the mapping of failures to retry or not.

aiohttp, one shared session: at WhatsApp volumes httpx's pool cost most of the reply path's CPU
(ARCHITECTURE §8: aiohttp ~16.6k requests/s against httpx ~0.6k here)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from common.retrying import RetryableCall, outbound_retrying, retry_after_seconds
from conversations import metrics
from conversations.providers.errors import ProviderUnavailable

_session: aiohttp.ClientSession | None = None
CallFailed = (aiohttp.ClientError, asyncio.TimeoutError)  # network error, refused, cut or too slow


@dataclass(frozen=True)
class Reply:
    """An answer, read whole (bodies of these APIs are small)."""

    status_code: int
    reason_phrase: str
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        return orjson.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


def session() -> aiohttp.ClientSession:
    global _session
    if _session is None or _session.closed:
        _session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, limit_per_host=50),
            json_serialize=lambda value: orjson.dumps(value).decode(),
            trust_env=proxied())
    return _session


def proxied() -> bool:
    """HTTP(S)_PROXY (with NO_PROXY) are honoured when set, as they were with httpx. Only then: with
    `trust_env` aiohttp looks them (and ~/.netrc) up again on every call, in a thread: a thread hop on each
    provider call (bench (w), quiet machine: reply p50 134 ms with it, 83 ms without)."""
    names = ("http_proxy", "https_proxy", "all_proxy")
    return any(os.environ.get(name) or os.environ.get(name.upper()) for name in names)


async def close() -> None:
    global _session
    if _session is not None:
        await _session.close()
        _session = None


async def fetch(method: str, url: str, *, timeout: float, **kwargs: Any) -> Reply:
    """One call, no retry; raises one of `CallFailed`."""
    # Redirects are not followed (a provider or flow that moves answers 3xx: a failure, as with httpx).
    async with session().request(method, url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False,
                                 **kwargs) as response:
        return Reply(response.status, response.reason or "", response.headers, await response.read())


def retryable(response: Reply) -> RetryableCall | None:
    if response.status_code in (408, 425, 429) or response.status_code >= 500:
        return RetryableCall(f"HTTP {response.status_code}", status=response.status_code,
                             retry_after=retry_after_seconds(response.headers.get("retry-after")))
    return None


async def request(provider: str, method: str, url: str, *, timeout: float, attempts: int = 3, max_seconds: float = 8.0,
                  check: Any = None, **kwargs: Any) -> Reply:
    """The call under the common tenacity policy (network errors, 429, 5xx; `check(response)` may raise
    RetryableCall for provider-specific throttling). Still failing after the policy: ProviderUnavailable.
    Every failed attempt is counted by `provider` and code class."""
    try:
        async for attempt in outbound_retrying(attempts=attempts, max_seconds=max_seconds, initial=0.2,
                                               max_wait=2.0):
            with attempt:
                try:
                    response = await fetch(method, url, timeout=timeout, **kwargs)
                except CallFailed as exc:
                    metrics.provider_error(provider, None)
                    raise RetryableCall(f"{type(exc).__name__}: {exc}") from exc
                if response.status_code >= 400:
                    metrics.provider_error(provider, response.status_code)
                failure = retryable(response) or (check(response) if check else None)
                if failure is not None:
                    raise failure
                return response
    except RetryableCall as exc:
        raise ProviderUnavailable(str(exc), retry_after=exc.retry_after) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def json_or_empty(response: Reply) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
