"""The one retry policy for outside APIs: retries `RetryableCall` only, honours Retry-After, gives up."""

from __future__ import annotations

import pytest

from common.retrying import RetryableCall, outbound_retry, outbound_retrying, retry_after_seconds


def _recording(retrying):
    """The policy with its sleep recorded instead of slept: the waits it chose, without waiting them."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    retrying.sleep = sleep
    return retrying, waits


async def _run(retrying, outcomes: list[Exception | str]) -> tuple[str, int]:
    """Calls a fake outside API that answers `outcomes` in turn; returns (result, calls made)."""
    calls = 0
    async for attempt in retrying:
        with attempt:
            outcome = outcomes[calls]
            calls += 1
            if isinstance(outcome, Exception):
                raise outcome
            return outcome, calls
    raise AssertionError("unreachable")


async def test_a_retryable_failure_is_retried_until_it_succeeds():
    retrying, waits = _recording(outbound_retrying(attempts=4, initial=0.5, max_wait=10))
    result, calls = await _run(retrying, [RetryableCall("502", status=502), RetryableCall("timeout"), "ok"])
    assert (result, calls) == ("ok", 3)
    assert len(waits) == 2 and all(0 < w <= 10 for w in waits)


async def test_the_servers_retry_after_is_the_wait_capped_at_the_longest_wait():
    retrying, waits = _recording(outbound_retrying(attempts=4, initial=0.5, max_wait=10))
    result, _ = await _run(retrying, [RetryableCall("429", retry_after=7, status=429),
                                      RetryableCall("429", retry_after=3600, status=429), "ok"])
    assert result == "ok" and waits == [7, 10]


async def test_it_gives_up_after_its_attempts_with_the_last_error():
    retrying, waits = _recording(outbound_retrying(attempts=3))
    with pytest.raises(RetryableCall, match="503 #3"):
        await _run(retrying, [RetryableCall(f"503 #{i}", status=503) for i in (1, 2, 3, 4)])
    assert len(waits) == 2


async def test_other_errors_are_not_retried():
    retrying, waits = _recording(outbound_retrying(attempts=4))
    with pytest.raises(ValueError):
        await _run(retrying, [ValueError("a 400 is our bug, not a glitch"), "ok"])
    assert waits == []


async def test_the_decorator_applies_the_same_policy():
    calls = 0

    @outbound_retry(attempts=3, initial=0.001, max_wait=0.001)
    async def call() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RetryableCall("connection reset")
        return "done"

    assert await call() == "done" and calls == 3

    @outbound_retry(attempts=2, initial=0.001, max_wait=0.001)
    async def always_down() -> None:
        raise RetryableCall("down", status=503)

    with pytest.raises(RetryableCall, match="down"):
        await always_down()


@pytest.mark.parametrize(("header", "seconds"), [
    ("7", 7.0), ("0.5", 0.5), ("-3", 0.0), (None, None), ("", None), ("Wed, 21 Oct 2015 07:28:00 GMT", None),
])
def test_retry_after_header_in_seconds(header, seconds):
    assert retry_after_seconds(header) == seconds
