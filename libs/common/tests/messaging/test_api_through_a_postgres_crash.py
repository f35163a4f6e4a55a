"""A service's API while its PostgreSQL is SIGKILLed and started again (crash recovery) under load, as in the
chaos test's PostgreSQL case: every write answers 2xx, or 503 + Retry-After while the server is away --
never a 500, whichever way the write reaches the database (a request's session, an autocommit connection,
a prepared statement on the driver)."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter

import httpx
from fastapi import APIRouter
from sqlalchemy import Column, Table, bindparam, insert
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import Uuid

from common.app import create_service_app
from common.config import ServiceSettings
from common.db import new_metadata
from common.db.engine import Prepared
from common.db.session import DatabaseDep, SessionDep


class Base(DeclarativeBase):
    metadata = new_metadata()


ROWS = Table("rows", Base.metadata, Column("id", Uuid, primary_key=True))
INSERT = Prepared(insert(ROWS).values(id=bindparam("id")))
PATHS = ("/session", "/autocommit", "/prepared")


def _app(url: str):
    router = APIRouter()

    @router.post("/session", status_code=201)
    async def through_the_session(session: SessionDep) -> None:
        await session.execute(insert(ROWS).values(id=uuid.uuid4()))

    @router.post("/autocommit", status_code=201)
    async def through_an_autocommit_connection(database: DatabaseDep) -> None:
        async with database.autocommit.connect() as conn:
            await conn.execute(insert(ROWS).values(id=uuid.uuid4()))

    @router.post("/prepared", status_code=201)
    async def through_the_driver(database: DatabaseDep) -> None:
        await database.run(INSERT, {"id": uuid.uuid4()})

    settings = ServiceSettings(service_name="crash", database_url=url, database_pool_size=4)
    return create_service_app(settings, title="crash", description="crash", routers=[router], public_routes=PATHS)


async def test_writes_answer_2xx_or_503_through_a_postgres_crash(own_postgres):
    await own_postgres.create_databases(["crash"])
    url = own_postgres.async_url("crash")
    app = _app(url)
    answers: Counter[str] = Counter()
    server_errors: list[str] = []
    async with app.router.lifespan_context(app):
        async with app.state.database.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        stop = asyncio.Event()
        # An exception that leaves the app, even after its answer, is raised here: uvicorn would close the connection
        # (behind the gateway, its next request got a 502).
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://crash", timeout=60) as client:
            async def load(path: str) -> None:
                while not stop.is_set():
                    try:
                        answer = await client.post(path)
                    except Exception as exc:
                        server_errors.append(f"{path}: raised {type(exc).__name__}: {exc}"[:300])
                        answers[f"{path} raised"] += 1
                        await asyncio.sleep(0.05)
                        continue
                    answers[f"{path} {answer.status_code}"] += 1
                    if answer.status_code == 500:
                        server_errors.append(f"{path}: {answer.text[:300]}")
                    elif answer.status_code == 503:
                        assert answer.headers["retry-after"] == "1"
                        await asyncio.sleep(0.05)  # as a client honouring Retry-After would, only sooner

            async def until(predicate, timeout=120.0) -> None:
                async with asyncio.timeout(timeout):
                    while not predicate():
                        await asyncio.sleep(0.05)

            clients = [asyncio.create_task(load(path)) for path in PATHS for _ in range(4)]
            try:
                await until(lambda: all(answers[f"{p} 201"] >= 20 for p in PATHS))
                postmaster = int((own_postgres.pgdata / "postmaster.pid").read_text().split()[0])
                os.kill(postmaster, signal.SIGKILL)
                await until(lambda: sum(n for k, n in answers.items() if k.endswith(" 503")) >= 3 * len(PATHS))
                await own_postgres.restart()
                ok_before = {p: answers[f"{p} 201"] for p in PATHS}
                await until(lambda: all(answers[f"{p} 201"] >= ok_before[p] + 20 for p in PATHS))
            finally:
                stop.set()
                await asyncio.gather(*clients, return_exceptions=True)
    assert not server_errors, (server_errors[:5], answers)
    assert set(answers) <= {f"{p} {code}" for p in PATHS for code in (201, 503)}, answers
