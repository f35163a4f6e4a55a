"""`supervise()`: the one way a long-running loop runs (STYLE habit 15).

A background job (relay, consumer, poller, purge) is a plain coroutine function; run under
`supervise`, a failure is logged with its reason (an outage -- the database or the broker unreachable -- as a
one-line warning, anything else as an error with its traceback) and the job is started again after a backoff
that grows while it keeps failing and resets once it has run a while. Cancellation stops it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from common.outage import is_outage

logger = logging.getLogger("common.supervise")


async def supervise(name: str, job: Callable[[], Awaitable[Any]], *, first_delay: float = 1.0,
                    max_delay: float = 30.0, healthy_after: float = 60.0,
                    on_failure: Callable[[BaseException], Any] | None = None) -> None:
    """Run `job()` until cancelled; restart it when it fails or returns.

    `on_failure` (e.g. resetting a leader flag) runs after each failure, before the backoff."""
    delay = first_delay
    while True:
        started = time.monotonic()
        try:
            await job()
            logger.warning("%s ended; starting it again in %.1f s", name, delay)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_outage(exc):  # the database or the broker away (restarting): expected, its reason is enough
                logger.warning("%s stopped: a dependency is unreachable (%s: %s); starting it again in %.1f s", name,
                               type(exc).__name__, (str(exc).splitlines() or [""])[0][:300], delay)
            else:
                logger.exception("%s failed; starting it again in %.1f s", name, delay)
            if on_failure is not None:
                on_failure(exc)
        if time.monotonic() - started >= healthy_after:
            delay = first_delay  # it ran well for a while: this failure is a new one
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)


async def every(interval: float, step: Callable[[], Awaitable[Any]], *, first: float | None = None) -> None:
    """Run `step()` every `interval` seconds (the first time after `first`, default `interval`).
    Meant to run under `supervise`, which restarts it if a step fails."""
    await asyncio.sleep(interval if first is None else first)
    while True:
        await step()
        await asyncio.sleep(interval)


class IdleWait:
    """How long a worker's fallback poll waits (between wake-ups that tell it of work): `base` after a pass that
    found work or after a wake-up, then doubling while passes find nothing, up to `longest` (default 8 x `base`).
    An idle worker then looks 8 times less often, while one with work (or retrying it) looks as often as before.
    Only for work that wakes its worker when it appears: the fallback is then for what nobody announced (a dead
    replica's leftovers), which may wait up to `longest`."""

    def __init__(self, base: float, longest: float | None = None) -> None:
        self.base = base
        self.longest = max(base, base * 8 if longest is None else longest)
        self._next = base

    def after(self, found: bool) -> float:
        """The wait after a pass that found work (`found`) or nothing."""
        if found:
            self._next = self.base
        wait, self._next = self._next, min(self._next * 2, self.longest)
        return wait

    def woken(self) -> None:
        """A wake-up came before the wait ended: the next empty pass waits `base` again."""
        self._next = self.base

    async def wait(self, event: asyncio.Event, found: bool) -> bool:
        """Wait for `event` at most `after(found)`; True if it was set (and counted as a wake-up)."""
        try:
            await asyncio.wait_for(event.wait(), self.after(found))
        except TimeoutError:
            return False
        self.woken()
        return True
