"""Whether a failure is an outage -- the database or the broker could not be reached, or went away -- rather
than the fault of the work at hand. Consumers hold their events through one instead of dead-lettering
them; the relay asks for its connection again every 0.5 s instead of backing off further and further."""

from __future__ import annotations

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from sqlalchemy import exc as sa_exc

OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    OSError,  # connection refused / reset, DNS, socket timeouts (TimeoutError is one)
    sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # no pooled connection came free in time
    asyncpg.InterfaceError,  # the connection is closed
    asyncpg.PostgresConnectionError,  # class 08: connection failure / does not exist
    asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,  # starting, stopping
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full, out of memory
    KafkaConnectionError, KafkaTimeoutError,
)


def is_outage(exc: BaseException) -> bool:
    """The database or the broker could not be reached (or went away): infrastructure, not the event.
    SQLAlchemy wraps the driver's error (`orig`, `__cause__`), so the whole chain is looked at."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OUTAGE_TYPES):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, asyncpg.InternalClientError) and "another operation" in str(current):
            # "cannot switch to state N; another operation (M) is in progress": a pooled connection left
            # mid-statement when the server died under it (seen at PostgreSQL's SIGKILL, on the driver path
            # of `Database.run`, which then discards it). Our connections are never shared by two tasks.
            return True
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return False
