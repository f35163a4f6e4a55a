"""One retry policy for calls to outside APIs (n8n, Stripe, WhatsApp): tenacity, not hand-written loops.

    @outbound_retry()
    async def create_customer(...): ...

or `async for attempt in outbound_retrying(): with attempt: ...`. A call is retried when it raised a
`RetryableCall` (the client decides: network error, 429, 5xx); waits grow exponentially with jitter, and
a `Retry-After` the server sent wins (capped).
"""

from __future__ import annotations

from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)


class RetryableCall(Exception):
    """A call that may succeed if made again; `retry_after` (seconds) is the server's own advice."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` header in seconds (delta form; an HTTP date is ignored, the backoff applies)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class _wait_retry_after:
    """The server's Retry-After when it sent one (capped), else the exponential backoff."""

    def __init__(self, fallback: Any, cap: float) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RetryableCall) and exc.retry_after is not None:
            return min(exc.retry_after, self.cap)
        return float(self.fallback(state))


def _policy(attempts: int, max_seconds: float, initial: float, max_wait: float) -> dict[str, Any]:
    return {
        "retry": retry_if_exception_type(RetryableCall),
        "stop": stop_after_attempt(attempts) | stop_after_delay(max_seconds),
        "wait": _wait_retry_after(wait_exponential_jitter(multiplier=initial, max=max_wait, jitter=initial), max_wait),
        "reraise": True,
    }


def outbound_retry(*, attempts: int = 4, max_seconds: float = 30.0, initial: float = 0.5,
                   max_wait: float = 10.0) -> Any:
    """Decorator for an async call to an outside API."""
    return retry(**_policy(attempts, max_seconds, initial, max_wait))


def outbound_retrying(*, attempts: int = 4, max_seconds: float = 30.0, initial: float = 0.5,
                      max_wait: float = 10.0) -> AsyncRetrying:
    """The same policy as an `async for attempt in ...: with attempt:` block."""
    return AsyncRetrying(**_policy(attempts, max_seconds, initial, max_wait))
