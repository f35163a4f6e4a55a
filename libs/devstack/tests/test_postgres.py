from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from devstack.postgres import (
    Postgres,
    provision_databases,
    start_embedded,
    start_postgres,
    to_sqlalchemy_url,
)
from devstack.services import SERVICES


async def test_embedded_creates_service_databases(pg: Postgres):
    assert pg.mode == "embedded"
    urls = await provision_databases(pg, SERVICES, env={})
    assert set(urls) == {s.name for s in SERVICES}
    assert urls["webhook-dispatcher"].startswith("postgresql+asyncpg://postgres@/webhook_dispatcher?host=")
    conn = await pg.connect()
    try:
        names = {r[0] for r in await conn.fetch("SELECT datname FROM pg_database")}
        assert int(await conn.fetchval("SHOW max_connections")) >= 300
        # new WAL segments without 16 MB of zeros written while every commit waits (devstack.postgres._tune)
        assert await conn.fetchval("SHOW wal_init_zero") == "off"
    finally:
        await conn.close()
    assert {s.database for s in SERVICES} <= names
    # idempotent
    assert await pg.create_databases([s.database for s in SERVICES]) == []
    # the URL works with SQLAlchemy's asyncpg dialect (unix socket via ?host=)
    engine = create_async_engine(urls["leads"])
    try:
        async with engine.connect() as c:
            assert (await c.execute(text("SELECT current_database()"))).scalar() == "leads"
    finally:
        await engine.dispose()


async def test_reuse_running_server(pg: Postgres, data_dir: Path):
    again = await asyncio.to_thread(start_embedded, data_dir)
    assert again.started_here is False
    assert again.admin_dsn == pg.admin_dsn


async def test_external_mode_and_override(pg: Postgres, tmp_path: Path):
    server_url = to_sqlalchemy_url(pg.dsn("postgres"))  # "a server URL, any db"
    override = pg.async_url("tenants_custom")
    env = {"DATABASE_URL": server_url, "TENANTS_DATABASE_URL": override}
    ext = await start_postgres(tmp_path, env)
    assert ext.mode == "external" and not (tmp_path / "postgres").exists()
    urls = await provision_databases(ext, SERVICES, env)
    assert urls["tenants"] == override
    assert urls["billing"].endswith("/billing?host=" + str(pg.socket_dir))
    conn = await asyncpg.connect(pg.dsn("tenants_custom"))
    await conn.close()
    ext.stop()  # no-op for external servers
    conn = await pg.connect()
    await conn.close()


async def test_long_pgdata_path_falls_back_to_runtime_socket_dir():
    base = Path(tempfile.mkdtemp(prefix="devstack-long-"))
    deep = base / ("x" * 60) / ("y" * 40)
    deep.mkdir(parents=True)
    server = await asyncio.to_thread(start_embedded, deep)
    try:
        assert server.socket_dir is not None and server.socket_dir != server.pgdata
        assert len(str(server.socket_dir)) < 100
        assert "plataforma-pgsock" in str(server.socket_dir)
        xdg = os.stat(os.environ["XDG_RUNTIME_DIR"])  # stays private: no platformdirs warning
        assert xdg.st_mode & 0o077 == 0
        conn = await server.connect()
        await conn.close()
    finally:
        server.stop()
    assert not (server.pgdata / "postmaster.pid").exists()
    with contextlib.suppress(OSError):
        server.socket_dir.rmdir()
    shutil.rmtree(base, ignore_errors=True)
