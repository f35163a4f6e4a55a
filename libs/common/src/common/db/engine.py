"""Async engine + session factory for one service database."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from common.observability.database_spans import trace_database


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False, custom_plans: bool = True) -> None:
        """`custom_plans`: every execution is planned for the tables as they are now. asyncpg prepares each
        statement once per connection, and PostgreSQL's default (`auto`) may switch to a generic plan
        chosen while a table was nearly empty and keep it: measured here, the dispatcher's claim went
        from 7 ms to 7 s, and its attempt recording from 1 to 17 ms, on a 40k-row backlog with such
        plans. Planning again costs little, except for the rare big statement on a hot path whose plan
        cannot degrade (the caller keeps a second `Database` with `custom_plans=False` for it)."""
        self.url = url
        # No pool_pre_ping: it costs a round trip on every checkout (every request). A connection the
        # server dropped fails its statement once and is discarded; recycling bounds their age.
        # At most 2 x `pool_size` connections (DATABASE_POOL_SIZE, as before), every one kept once opened.
        # With `pool_size` + as many in overflow, SQLAlchemy closed each overflow connection as soon as it
        # was checked in: under 32 clients the tenants service opened 152-183 PostgreSQL sessions in 10 s
        # (each a fork on the server and a handshake plus type introspection here). A request that finds
        # every connection busy waits for one (pool_timeout). LIFO keeps the idle ones few and warm.
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=2 * pool_size, max_overflow=0, pool_use_lifo=True, pool_timeout=30,
            pool_recycle=1800, echo=echo,
            connect_args={"server_settings": {"plan_cache_mode": "force_custom_plan" if custom_plans else "auto"}},
        )
        # The same pool, each statement committing by itself (no BEGIN/COMMIT round trips): for hot paths
        # that write in one statement. Connections go back to the pool in the default isolation level.
        trace_database(self.engine)  # a span per statement when TRACING_DATABASE_SPANS=true (off by default)
        self.autocommit: AsyncEngine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, class_=AsyncSession)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
