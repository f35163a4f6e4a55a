"""Async engine + session factory for one service database, and `Prepared` statements for hot paths."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Dialect, Executable, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from common.observability.database_spans import statement_span, trace_database


def _json(value: Any) -> str:
    """JSON/JSONB parameters: orjson, a tenth of `json.dumps`' CPU (three per tenant create), where both write the
    same document. orjson writes NaN and infinities as null (`json.dumps` writes NaN, which PostgreSQL refuses:
    refused it stays), and refuses integers beyond 64 bits: any null, or a refusal, takes the old path."""
    try:
        out = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                          | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value)
    return json.dumps(value) if b"null" in out else out.decode()


RECYCLE_SECONDS = 1800  # a pooled connection's age limit (SQLAlchemy's pool_recycle, and `Database.run`'s own)
POOL_TIMEOUT = 30.0  # how long a request waits for a connection (the pool's `pool_timeout`, and `Database.run`'s)


class PoolTimeout(sa_exc.TimeoutError):
    """No connection of `Database.run`'s came free in POOL_TIMEOUT: what the pool raises in that case (an outage,
    a 503 for the caller)."""


def _refused_data(exc: asyncpg.PostgresError) -> bool:
    """A statement refused for its data (a constraint, a value the column cannot hold): its connection is usable."""
    return isinstance(exc, (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError))


def _as_sqlalchemy(sql: str, args: list[Any], exc: asyncpg.PostgresError) -> DBAPIError:
    """The driver's error as SQLAlchemy raises it from a session (`IntegrityError` for a constraint)."""
    error = IntegrityError if isinstance(exc, asyncpg.IntegrityConstraintViolationError) else DBAPIError
    return error(sql, args, exc)


class Prepared:
    """A Core statement with named `bindparam`s, compiled once per process and run by `Database.run` straight on a
    pooled connection's asyncpg driver (which prepares it once per connection).

    For a hot path that writes ONE statement: building, caching and executing a Core statement through a
    session cost ~0.5 ms of CPU per call here, against ~0.07 ms for the driver alone. The statement still
    is SQLAlchemy (types, names, bind processors such as JSONB's): only its compilation is done once."""

    def __init__(self, statement: Executable, *, generic_plan: bool = False) -> None:
        """`generic_plan`: planned once per connection, not at every execution (see `Database`'s custom plans): for
        a statement with no plan to choose, such as INSERT ... VALUES (its planning was ~20 us of PostgreSQL's
        CPU per tenant create, a tenth of the statement)."""
        self.statement = statement
        self.generic_plan = generic_plan
        self._compiled: tuple[str, list[tuple[str, Callable[[Any], Any] | None]]] | None = None

    def compiled(self, dialect: Dialect) -> tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]:
        """(SQL with $n placeholders, each placeholder's parameter name and bind processor)."""
        if self._compiled is None:
            compiled = self.statement.compile(dialect=dialect)
            processors = compiled._bind_processors
            self._compiled = (compiled.string, [(name, processors.get(name)) for name in compiled.positiontup or ()])
        return self._compiled


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
            url, pool_size=2 * pool_size, max_overflow=0, pool_use_lifo=True, pool_timeout=POOL_TIMEOUT,
            pool_recycle=RECYCLE_SECONDS, echo=echo, json_serializer=_json,
            connect_args={"server_settings": {"plan_cache_mode": "force_custom_plan" if custom_plans else "auto"}},
        )
        # The same pool, each statement committing by itself (no BEGIN/COMMIT round trips): for hot paths
        # that write in one statement. Connections go back to the pool in the default isolation level.
        # a span per statement when TRACING_DATABASE_SPANS=true (off by default); `run` makes its own
        self._spans = trace_database(self.engine)
        self.autocommit: AsyncEngine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, class_=AsyncSession)
        # `run`'s own connections: at most `pool_size` - 1 of the pool's, kept checked out between calls (a checkout
        # and check-in through the async engine cost ~20 us of CPU, two thirds of the statement's own driver work),
        # so sessions always have `pool_size` of the pool's 2 x `pool_size` beside the relay's one; a call that
        # finds all of them busy waits for one (with DATABASE_POOL_SIZE=1, none is kept: one checkout per call).
        # Idle ones by plan mode (True: `Prepared.generic_plan`), each with when it was taken from the pool
        # (recycled after RECYCLE_SECONDS kept, so at most twice that since it was opened). A connection's mode is
        # set when a call needs the other one, and set back before it returns to the pool: once per connection,
        # not per call. (Before, a call finding no idle one took another from the pool and gave it back after:
        # under 32 clients a quarter of the tenant creates paid a SET and a RESET round trip for that.)
        self._kept: dict[bool, list[tuple[Any, float]]] = {False: [], True: []}
        self._keep = pool_size - 1
        self._held = 0  # taken from the pool by `run` and not given back: idle in `_kept`, or running a statement
        # Calls waiting for one, first come first served: each is handed a connection, or None (open one).
        self._waiting: collections.deque[asyncio.Future[tuple[Any, float, bool] | None]] = collections.deque()

    async def run(self, prepared: Prepared, params: Mapping[str, Any]) -> str:
        """Execute `prepared` with `params` (every bind parameter by name) on a connection of its own, committed
        by itself (asyncpg's implicit transaction); returns PostgreSQL's command status (`INSERT 0 1`: one row
        written). Database errors come out as SQLAlchemy's, as from a session (`IntegrityError` for a
        constraint), so callers and the problem+json handlers treat both paths alike."""
        sql, names = prepared.compiled(self.engine.dialect)
        if len(params) != len(names):  # a value nobody binds would be dropped silently
            raise ValueError(f"expected parameters {[n for n, _ in names]}, got {sorted(params)}")
        args = [process(params[name]) if process else params[name] for name, process in names]
        span = statement_span(sql, self.engine.url.database) if self._spans else contextlib.nullcontext()
        if self._keep == 0:
            return await self._run_once(sql, args, span)
        generic = prepared.generic_plan
        conn, since, mode = await self._take(generic)
        try:
            if mode != generic:
                # Only statements that commit by themselves run on these connections: a plain SET stays.
                await conn.driver_connection.execute("SET plan_cache_mode = auto" if generic else "RESET plan_cache_mode")
                mode = generic
            with span:
                status: str = await conn.driver_connection.execute(sql, *args)
        except asyncpg.PostgresError as exc:
            # A statement refused for its data leaves a usable connection; anything else (the server shutting
            # down, a killed backend) may not, and a dead one kept or back in the pool fails the next request.
            if _refused_data(exc):
                await self._put_back(conn, since, mode)
            else:
                self._drop(conn)
                self._forget_kept()
            raise _as_sqlalchemy(sql, args, exc) from exc
        except BaseException as exc:
            # Cancelled or broken mid-statement: the connection's state is unknown, so it is not reused.
            self._drop(conn)
            if not isinstance(exc, asyncio.CancelledError):
                self._forget_kept()
            raise
        await self._put_back(conn, since, mode)
        return status

    async def _run_once(self, sql: str, args: list[Any], span: Any) -> str:
        """`run` with nothing kept: a pool checkout for the one statement, planned as the pool plans."""
        conn = await self._pooled()
        try:
            with span:
                status: str = await conn.driver_connection.execute(sql, *args)
        except asyncpg.PostgresError as exc:
            if _refused_data(exc):
                conn.close()
            else:
                conn.invalidate()
            raise _as_sqlalchemy(sql, args, exc) from exc
        except BaseException:
            conn.invalidate()
            raise
        conn.close()
        return status

    async def _take(self, generic: bool) -> tuple[Any, float, bool]:
        """An idle kept connection planning as wanted, else a new one from the pool while fewer than `_keep` are
        held, else an idle one planning the other way, else the first to come free, handed over in the order the
        calls came (within the pool's timeout): none is taken by a later call meanwhile."""
        if self._kept[generic]:
            return (*self._kept[generic].pop(), generic)
        if self._held < self._keep:
            self._held += 1
            return await self._connect()
        if self._kept[not generic]:
            return (*self._kept[not generic].pop(), not generic)
        waiter: asyncio.Future[tuple[Any, float, bool] | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            async with asyncio.timeout(POOL_TIMEOUT):
                handed = await waiter
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter.done() and not waiter.cancelled():  # handed over, then ended: to the next call
                handed = waiter.result()
                if handed:
                    self._give(*handed)
                else:
                    self._released()
            else:
                with contextlib.suppress(ValueError):  # or already passed over by `_next`
                    self._waiting.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise PoolTimeout(f"none of `run`'s {self._keep} connections came free in {POOL_TIMEOUT:.0f} s") \
                    from None
            raise
        return handed if handed else await self._connect()  # None: one was dropped, a new one may be opened

    async def _connect(self) -> tuple[Any, float, bool]:
        """A new connection from the pool, already counted in `_held`."""
        try:
            return await self._pooled(), time.monotonic(), False
        except BaseException:
            self._released()
            raise

    async def _pooled(self) -> Any:
        """A connection from the pool, its driver's errors raised as SQLAlchemy's, as `engine.connect()` raises them
        (`raw_connection` does not: e.g. "not yet accepting connections" came out as the dialect's bare `Error`,
        which only a handler of `Exception` answered, after which Starlette raises it again)."""
        try:
            return await self.engine.raw_connection()
        except self.engine.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(None, None, exc, self.engine.dialect.loaded_dbapi.Error,
                                      dialect=self.engine.dialect) from exc

    def _next(self) -> asyncio.Future[tuple[Any, float, bool] | None] | None:
        """The first call still waiting (one cancelled or timed out meanwhile is passed over)."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                return waiter
        return None

    def _give(self, conn: Any, since: float, generic: bool) -> None:
        """A connection came free: to the first waiting call, else kept idle."""
        if waiter := self._next():
            waiter.set_result((conn, since, generic))
        else:
            self._kept[generic].append((conn, since))

    def _released(self) -> None:
        """A held connection was closed or dropped: the first waiting call may open one in its place."""
        if waiter := self._next():
            waiter.set_result(None)  # still counted in `_held`: now its
        else:
            self._held -= 1

    def _drop(self, conn: Any) -> None:
        conn.invalidate()
        self._released()

    def _forget_kept(self) -> None:
        """A connection failed (the server restarted, or killed it): those kept are likely dead too. Each would
        fail one request (no checkout sees them); closed, the next `run`s connect afresh instead."""
        for kept in self._kept.values():
            while kept:
                self._drop(kept.pop()[0])

    async def _put_back(self, conn: Any, since: float, generic: bool) -> None:
        """Keep `conn` for the next `run`, unless it is due for recycling: back to the pool (planning as it did
        when it came from there)."""
        if time.monotonic() - since < RECYCLE_SECONDS:
            self._give(conn, since, generic)
            return
        if generic:
            try:
                await conn.driver_connection.execute("RESET plan_cache_mode")
            except Exception:  # the statement's outcome stands; this connection is not reused
                self._drop(conn)
                return
            except BaseException:
                self._drop(conn)
                raise
        conn.close()
        self._released()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        self._forget_kept()  # closed: a generic plan setting must not reach the pool
        await self.engine.dispose()
