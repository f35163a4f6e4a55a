"""An API whose database cannot be reached answers 503 problem+json with Retry-After (come back soon,
nothing changed), not a 500 that reads as a bug; a real bug still answers 500."""

from __future__ import annotations

import socket

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from common.errors import install_problem_handlers
from common.testing.checks import assert_problem


def _closed_port() -> int:
    with socket.socket() as s:  # bound then released: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def client():
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

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://test") as c:
        yield c
    await engine.dispose()


@pytest.mark.parametrize("path", ["/through-sqlalchemy", "/through-the-driver"])
async def test_an_unreachable_database_is_a_503_to_retry(client, path):
    answer = await client.get(path)
    assert_problem(answer, 503)
    assert answer.headers["retry-after"] == "1"


async def test_a_bug_is_still_a_500(client):
    assert_problem(await client.get("/bug"), 500)
