"""The loop both workers (stored webhooks, queued messages) run: woken right after a commit that gave them
work (`wake_after_commit(session, channel)`), polling as a fallback in case a wake-up was missed."""

from __future__ import annotations

import asyncio
import contextlib

from common.messaging.wakeup import register_leader, unregister_leader


class WokenWorker:
    channel: str  # the wake-up channel commits name

    def __init__(self, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def step(self) -> bool:
        """Do what is due; True when more may be due at once (go on without waiting)."""
        raise NotImplementedError

    async def run(self) -> None:
        register_leader(self.channel, self.wake)
        try:
            while True:
                self._wake.clear()
                while await self.step():
                    pass
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        except asyncio.CancelledError:
            # Shutdown only: a step that failed is restarted by `supervise`, and work it started elsewhere (e.g.
            # deliveries in flight) goes on rather than being cut mid-call and sent again after its lease.
            self.stopped()
            raise
        finally:
            unregister_leader(self.channel, self.wake)

    def stopped(self) -> None:
        """Called when the loop ends (cancelled at shutdown)."""
