"""`supervise()`: the one way a long-running loop runs (STYLE habit 15).

A background job (relay, consumer, poller, purge) is a plain coroutine function; run under
`supervise`, a failure is logged with its reason (an outage -- the database or the broker unreachable -- as a
one-line warning, anything else as an error with its traceback) and the job is started again after a backoff
that grows while it keeps failing (to 5 s for an outage, 30 s for a bug) and resets once it has run a while.
Cancellation stops it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from common.outage import is_outage

logger = logging.getLogger("common.supervise")


OUTAGE_MAX_DELAY = 5.0  # seconds: how long a job stopped by an outage waits at most before it tries again


async def supervise(name: str, job: Callable[[], Awaitable[Any]], *, first_delay: float = 1.0,
                    max_delay: float = 30.0, outage_max_delay: float = OUTAGE_MAX_DELAY, healthy_after: float = 10.0,
                    on_failure: Callable[[BaseException], Any] | None = None) -> None:
    """Run `job()` until cancelled; restart it when it fails or returns.

    The wait doubles from `first_delay` while the job keeps failing, up to `max_delay` for a bug and
    `outage_max_delay` for an outage: a dependency that comes back (a restarted database or broker) is found within
    seconds, not after the half minute a bug's backoff reaches. A job that ran `healthy_after` seconds had what it
    needs: its next failure is a new one, waited for from `first_delay` again. (With 60 s there, an outbox relay whose
    connection was cut every 9 s waited 1, 2, 4, 8, 16, then 30 s before publishing again.)
    `on_failure` (e.g. resetting a leader flag) runs after each failure, before the wait."""
    delay = first_delay
    while True:
        started = time.monotonic()
        failure: Exception | None = None
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = exc
        if time.monotonic() - started >= healthy_after:
            delay = first_delay
        outage = failure is not None and is_outage(failure)
        if outage:
            delay = min(delay, outage_max_delay)
        if failure is None:
            logger.warning("%s ended; starting it again in %.1f s", name, delay)
        elif outage:  # the database or the broker away (restarting): expected, its reason is enough
            logger.warning("%s stopped: a dependency is unreachable (%s: %s); starting it again in %.1f s", name,
                           type(failure).__name__, (str(failure).splitlines() or [""])[0][:300], delay)
        else:
            logger.error("%s failed; starting it again in %.1f s", name, delay, exc_info=failure)
        if failure is not None and on_failure is not None:
            on_failure(failure)
        await asyncio.sleep(delay)
        delay = min(delay * 2, outage_max_delay if outage else max_delay)


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
