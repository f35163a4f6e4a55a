"""Fixtures of the messaging tests."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from common.config import ServiceSettings
from common.db import Database
from common.messaging import EventConsumer


@pytest.fixture
def recording_consumer() -> Callable[..., tuple[EventConsumer, list[uuid.UUID]]]:
    """`consumer, applied = recording_consumer(settings, database, inbox, topic)`: an `EventConsumer` of
    `topic` whose handler records, in `applied`, the id of every event it applies."""

    def make(settings: ServiceSettings, database: Database, inbox: Any, topic: str,
             name: str | None = None) -> tuple[EventConsumer, list[uuid.UUID]]:
        applied: list[uuid.UUID] = []

        async def handler(session: Any, events: list[Any]) -> None:
            applied.extend(e.id for e in events)

        consumer = EventConsumer(settings, database, inbox, name=name or f"c{uuid.uuid4().hex[:6]}", topics=[topic],
                                 handler=handler)
        return consumer, applied

    return make


@pytest.fixture
async def broker(tmp_path):
    """A tansu of this test's own, so it can be killed (`down`) and started again (`up`, `restart`) on the same
    address."""
    from devstack.kafka import start_tansu

    started = [await start_tansu(log_path=tmp_path / "tansu.log")]
    port = int(started[0].bootstrap.rsplit(":", 1)[1])

    async def down() -> None:
        started[-1].kill()
        await asyncio.to_thread(started[-1].process.wait)

    async def up() -> None:
        started.append(await start_tansu(port, log_path=tmp_path / "tansu.log"))

    async def restart() -> None:
        await down()
        await up()

    started[0].down, started[0].up, started[0].restart = down, up, restart  # type: ignore[attr-defined]
    yield started[0]
    await started[-1].stop()


@pytest.fixture
async def own_postgres():
    """A PostgreSQL of this test's own: it is stopped and started again (the session's serves other tests)."""
    from devstack.postgres import restart_embedded, start_embedded

    data_dir = Path(tempfile.mkdtemp(prefix="outage-"))  # short: the socket lives in it
    pg = await asyncio.to_thread(start_embedded, data_dir)
    pg.restart = lambda: asyncio.to_thread(restart_embedded, pg)  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        await asyncio.to_thread(pg.stop)
