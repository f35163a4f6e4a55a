"""One HTTP client for calls to the providers, and the mapping of failures to retry or not."""

from __future__ import annotations

from typing import Any

import httpx

from common.retrying import RetryableCall, outbound_retrying, retry_after_seconds
from conversations import metrics
from conversations.providers.errors import ProviderUnavailable

_client: httpx.AsyncClient | None = None


def client() -> httpx.AsyncClient:
    global _client
    if _client is None or _client.is_closed:
        _client = httpx.AsyncClient(timeout=10.0, limits=httpx.Limits(max_connections=100,
                                                                      max_keepalive_connections=50))
    return _client


async def close() -> None:
    global _client
    if _client is not None:
        await _client.aclose()
        _client = None


def retryable(response: httpx.Response) -> RetryableCall | None:
    if response.status_code in (408, 425, 429) or response.status_code >= 500:
        return RetryableCall(f"HTTP {response.status_code}", status=response.status_code,
                             retry_after=retry_after_seconds(response.headers.get("retry-after")))
    return None


async def request(provider: str, method: str, url: str, *, timeout: float, attempts: int = 3, max_seconds: float = 8.0,
                  check: Any = None, **kwargs: Any) -> httpx.Response:
    """The call under the common tenacity policy (network errors, 429, 5xx; `check(response)` may raise
    RetryableCall for provider-specific throttling). Still failing after the policy: ProviderUnavailable.
    Every failed attempt is counted by `provider` and code class."""
    try:
        async for attempt in outbound_retrying(attempts=attempts, max_seconds=max_seconds, initial=0.2,
                                               max_wait=2.0):
            with attempt:
                try:
                    response = await client().request(method, url, timeout=timeout, **kwargs)
                except httpx.HTTPError as exc:
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


def json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
