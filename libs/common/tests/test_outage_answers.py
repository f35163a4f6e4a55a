"""An API whose database cannot be reached answers 503 problem+json with Retry-After (come back soon,
nothing changed), not a 500 that reads as a bug; a real bug still answers 500."""

from __future__ import annotations

import socket

import asyncpg
import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from common.errors import install_problem_handlers
from common.testing.checks import assert_problem


def _closed_port() -> int:
    with socket.socket() as s:  # bound then released: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def app():
    port = _closed_port()
    engine = create_async_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{port}/none")
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/through-sqlalchemy")
    async def through_sqlalchemy() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    @app.get("/through-the-driver")
    async def through_the_driver() -> None:
        await asyncpg.connect(host="127.0.0.1", port=port, user="nobody", database="none")

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a real bug")

    @app.get("/through-the-pool")
    async def through_the_pool() -> None:
        raise sa_exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached")

    @app.get("/through-the-broker")
    async def through_the_broker() -> None:
        raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9)]")

    yield app
    await engine.dispose()


@pytest.fixture
async def client(app):
    # Strict: an exception that still leaves the app after its answer fails the call here, as it makes uvicorn close
    # the connection (the gateway's next request on it then gets a 502).
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


@pytest.mark.parametrize("path", ["/through-sqlalchemy", "/through-the-driver", "/through-the-pool",
                                  "/through-the-broker"])
async def test_an_unreachable_database_is_a_503_to_retry_answered_and_done(client, path):
    answer = await client.get(path)
    assert_problem(answer, 503)
    assert answer.headers["retry-after"] == "1"


async def test_a_bug_is_still_a_500_and_raised_again_for_the_servers_log(app, client):
    with pytest.raises(RuntimeError, match="a real bug"):
        await client.get("/bug")
    lenient = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=lenient, base_url="http://test") as c:
        assert_problem(await c.get("/bug"), 500)
