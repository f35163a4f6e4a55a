"""Fixture factories for a service's conftest: the blocks every service declared by hand, written once.

A service declares these in its own conftest rather than taking them from the plugin: pytest keeps a
session fixture's first value, so a plugin fixture would hand the first service's database (and app)
to every service of a multi-service run. A conftest therefore says, e.g.:

    database_url = database_url_fixture("leads")
    db = db_fixture()
    service_url = service_url_fixture(create_app, Settings)
    events = events_fixture("platform.leads.events")
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from common.testing.events import EventCollector, collect_events
from common.testing.servers import serve_app


def database_url_fixture(service: str) -> Any:
    """`database_url`: the async URL of the service's freshly migrated database."""

    @pytest.fixture(scope="session", name="database_url")
    async def database_url(migrated_database: Callable[..., Awaitable[str]]) -> str:
        return await migrated_database(service)

    return database_url


def db_fixture() -> Any:
    """`db`: an engine on the service's database, to set up or read what the API cannot."""

    @pytest.fixture(scope="session", name="db")
    async def db(database_url: str) -> AsyncIterator[AsyncEngine]:
        engine = create_async_engine(database_url)
        yield engine
        await engine.dispose()

    return db


def service_url_fixture(create_app: Callable[[Any], FastAPI], settings: Callable[..., Any]) -> Any:
    """`service_url`: the service's app served for real (lifespan, relay, consumers) on its database, with
    the plugin's `platform_settings`; the plugin's `owner` / `anonymous` / `tenant_user` clients call it."""

    @pytest.fixture(scope="session", name="service_url")
    async def service_url(database_url: str, platform_settings: dict[str, Any]) -> AsyncIterator[str]:
        async with serve_app(create_app(settings(database_url=database_url, **platform_settings))) as url:
            yield url

    return service_url


def events_fixture(*topics: str) -> Any:
    """`events`: everything on `topics` during the session (one collector, not one per test); tests pick
    their own aggregates' events by id."""

    @pytest.fixture(scope="session", name="events")
    async def events(kafka_bootstrap: str) -> AsyncIterator[EventCollector]:
        async with collect_events(kafka_bootstrap, list(topics)) as collector:
            yield collector

    return events


def server_fixture(start: Callable[[], Any], name: str, scope: str = "session") -> Any:
    """A fixture serving `start()` (an async context manager: a fake provider, the webhook receiver) for
    the whole run, or the `scope` given: `stripe = server_fixture(fake_stripe, "stripe")`."""

    @pytest.fixture(scope=scope, name=name)  # type: ignore[call-overload]
    async def server() -> AsyncIterator[Any]:
        async with start() as running:
            yield running

    return server
