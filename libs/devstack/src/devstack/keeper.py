"""Keeps a started :class:`~devstack.supervisor.Stack` running: whatever dies is started again.

``make run`` runs one :class:`Keeper` for as long as it is up. Every ``interval`` it looks at each part
it started -- the embedded PostgreSQL, the embedded broker, the gateway, each service -- and one that
exited is started again after a backoff (``first_delay``, doubling up to ``max_delay`` while it keeps
failing; back to ``first_delay`` once it has stayed up ``healthy_after`` seconds). Each exit and each
return is logged (``progress``), and the state of every part is kept in ``status`` and written to
``<DATA_DIR>/status.json``::

    {"tenants": {"state": "up", "restarts": 1, "last_exit": -9, "since": 1733550000.0}, ...}

A service is started again from its spare (``spares``, see :mod:`devstack.standby`): a process that has
already imported the service's app, waiting -- the imports are most of a start (7-12 s on
a busy 2-core machine; ~0.1 GB of memory per spare).

States: ``up``, ``restarting`` (waiting for the backoff or for /readyz), ``down`` (a restart failed;
tried again after the next backoff). Services also show the broker and the database in their own
``/readyz``. What a restart means for data: a service resumes its consumers from the committed
offsets and its relay from the outbox; a restarted embedded broker starts empty, and the relays
re-publish what it lost from their outboxes (see ``common.messaging.relay``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .supervisor import Stack


@dataclass
class PartStatus:
    state: str = "up"
    restarts: int = 0
    last_exit: int | None = None
    since: float = 0.0  # time.time() of the last change
    error: str | None = None


@dataclass
class _Part:
    name: str
    alive: Callable[[], bool]
    exit_code: Callable[[], int | None]
    restart: Callable[[], Awaitable[None]]
    delay: float = 0.0
    up_since: float = 0.0  # monotonic
    task: asyncio.Task[None] | None = None


class Keeper:
    def __init__(self, stack: Stack, *, interval: float = 0.2, first_delay: float = 0.2, max_delay: float = 30.0,
                 healthy_after: float = 60.0, progress: Callable[[str], None] | None = None,
                 spares: bool = True) -> None:
        self.stack = stack
        self.spares = spares
        self.interval = interval
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.healthy_after = healthy_after
        self._progress = progress or stack.note
        self.status: dict[str, PartStatus] = {}
        self._parts = self._watched()
        now = time.monotonic()
        for part in self._parts:
            part.delay, part.up_since = first_delay, now
            self.status[part.name] = PartStatus(since=time.time())
        self._write()

    def _watched(self) -> list[_Part]:
        stack = self.stack
        parts: list[_Part] = []
        if stack.postgres is not None and stack.postgres.mode == "embedded" and "postgres" in stack._owned:
            parts.append(_Part("postgres", lambda: stack.postgres.alive(), lambda: None, stack.restart_postgres))
        if stack.broker is not None and stack.broker.embedded and "kafka" in stack._owned:
            parts.append(_Part("kafka", lambda: stack.broker.process.poll() is None,
                               lambda: stack.broker.process.poll(), stack.restart_kafka))
        if stack.gateway is not None:
            parts.append(_Part("gateway", lambda: stack.gateway.process.poll() is None,
                               lambda: stack.gateway.process.poll(), stack.restart_gateway))
        for name in stack.services:  # looked up each time: a restart makes a new ServiceProcess
            parts.append(_Part(name, lambda name=name: stack.services[name].alive(),
                               lambda name=name: stack.services[name].process.poll(),
                               lambda name=name: stack.restart_service(name)))
        return parts

    async def run(self) -> None:
        """Watch until cancelled (then any restart in progress is cancelled too)."""
        if self.spares:
            self.stack.start_standbys(self.stack.services, spare=True)
        try:
            while True:
                for part in self._parts:
                    if part.task is None and not part.alive():
                        part.task = asyncio.create_task(self._bring_back(part), name=f"keeper-{part.name}")
                await asyncio.sleep(self.interval)
        finally:
            tasks = [p.task for p in self._parts if p.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _bring_back(self, part: _Part) -> None:
        try:
            code = part.exit_code()
            if time.monotonic() - part.up_since >= self.healthy_after:
                part.delay = self.first_delay  # it ran well for a while: a new failure, not the same one
            self._set(part.name, "restarting", last_exit=code)
            where = self.stack.services.get(part.name)
            self._progress(f"WARNING: {part.name} exited" + (f" with code {code}" if code is not None else "")
                           + f"; starting it again in {part.delay:.1f}s"
                           + (f"; last lines of {where.log_path}:\n{where.log_tail(10)}" if where else ""))
            while True:
                await asyncio.sleep(part.delay)
                part.delay = min(part.delay * 2, self.max_delay)
                started = time.monotonic()
                try:
                    await part.restart()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    why = f"{type(exc).__name__}: {exc}"
                    self._set(part.name, "down", error=why[-2000:])
                    self._progress(f"WARNING: {part.name} did not come back ({why[:300]}); "
                                   f"trying again in {part.delay:.1f}s")
                    continue
                part.up_since = time.monotonic()
                if self.spares and part.name in self.stack.services:  # the next one, for the next time
                    self.stack.start_standbys([part.name], spare=True)
                self.status[part.name].restarts += 1
                self._set(part.name, "up", error=None)
                self._progress(f"{part.name}: back ({time.monotonic() - started:.1f}s to start)")
                return
        finally:
            part.task = None

    def _set(self, name: str, state: str, **changes: object) -> None:
        status = self.status[name]
        status.state, status.since = state, time.time()
        for key, value in changes.items():
            setattr(status, key, value)
        self._write()

    def _write(self) -> None:
        with contextlib.suppress(OSError):
            path = self.stack.data_dir / "status.json"
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps({n: asdict(s) for n, s in self.status.items()}, indent=1))
            tmp.replace(path)
