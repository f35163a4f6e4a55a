"""Fixtures of the messaging tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable
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
