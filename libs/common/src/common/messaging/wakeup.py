"""Waking the outbox relay after a commit, without serialising the service's commits.

A NOTIFY inside the writing transaction takes PostgreSQL's database-wide notify lock at commit and
holds it through the WAL flush, so every writing request of a service commits one after another
(seen in `make bench` (d): COMMITs waiting on `Lock/object`, API p99 > 100 ms at 200 writes/s).
Instead, once the session has committed:
- the relay of this process, when it leads, is woken directly (an asyncio event);
- otherwise the leader is elsewhere: one `pg_notify` in its own tiny transaction (nothing to flush),
  coalesced, so a burst of commits costs a few notifications, not one each.
A lost wake-up only delays publishing until the relay's polling fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from common.db.session import COMMITS_EACH_STATEMENT

logger = logging.getLogger("common.messaging.wakeup")

_PENDING = "outbox_wakeups"  # Session.info key: {channel: async engine} of the outbox rows written
_leaders: dict[str, Callable[[], None]] = {}  # channel -> wake-up of this process's leading relay
_notifiers: dict[str, _Notifier] = {}


def register_leader(channel: str, wake: Callable[[], None]) -> None:
    _leaders[channel] = wake


def unregister_leader(channel: str, wake: Callable[[], None]) -> None:
    if _leaders.get(channel) == wake:  # bound methods: equal, not identical
        del _leaders[channel]


def leads_here(channel: str) -> bool:
    """Whether the relay (or worker) woken through `channel` runs in this process: `wake` is then a direct call."""
    return channel in _leaders


def wake_after_commit(session: AsyncSession, channel: str) -> None:
    """Called when an outbox row is added in `session`: wake the relay once that session commits (at
    once when each of its statements commits by itself: the row is already visible)."""
    if session.info.get(COMMITS_EACH_STATEMENT):
        wake(channel, session.bind)
    else:
        session.info.setdefault(_PENDING, {})[channel] = session.bind


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    for channel, engine in pending.items():
        wake(channel, engine)


def wake(channel: str, engine: object) -> None:
    """Wake the relay of `channel`: at once when it leads in this process, else by a coalesced NOTIFY."""
    leader = _leaders.get(channel)
    if leader is not None:
        leader()
    elif isinstance(engine, AsyncEngine):
        notifier = _notifiers.get(channel)
        if notifier is None or notifier.engine is not engine:
            if notifier is not None:
                notifier.release()
            notifier = _notifiers[channel] = _Notifier(engine, channel)
        notifier.request()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)  # nothing became visible


class _Notifier:
    """Sends NOTIFY on its own connection for the commits of this process, one at a time: a commit that
    lands while one is in flight is covered by the next.

    The connection is one of the pool's, kept (while this process writes to a channel whose relay leads
    elsewhere) and used through its driver: a checkout, a Core statement and a commit per NOTIFY were 16 % of
    the CPU of conversations' API process at 200 webhooks/s (the relay leads in its worker process)."""

    def __init__(self, engine: AsyncEngine, channel: str) -> None:
        self.engine = engine
        self.channel = channel
        self.dirty = False
        self.task: asyncio.Task[None] | None = None
        self._conn: Any = None  # a pooled connection (SQLAlchemy's adapter of asyncpg's), kept between sends

    def request(self) -> None:
        self.dirty = True
        if self.task is None or self.task.done():
            with contextlib.suppress(RuntimeError):  # no running loop: the polling fallback will do
                self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self.dirty:
            self.dirty = False
            try:
                if self._conn is None:
                    self._conn = await self.engine.raw_connection()
                # No transaction of its own to open or commit: the statement commits by itself (asyncpg), and
                # the notification goes out at that commit.
                await self._conn.driver_connection.execute("SELECT pg_notify($1, '')", self.channel)
            except Exception as exc:  # the relay's polling fallback publishes the row anyway
                self.release()  # maybe dead (a restarted server): the next send takes a fresh one
                logger.warning("outbox wake-up for %s not sent: %s", self.channel, exc)
                return
            except BaseException:  # cancelled mid-statement (shutdown): its state is unknown
                self.release()
                raise

    def release(self) -> None:
        """Give up the kept connection (closed, not returned: a send may be in flight on it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
