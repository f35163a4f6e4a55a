"""Whether a service's database already is at its Alembic head, checked without a migration process.

``alembic upgrade head`` runs in a Python process of its own (alembic, SQLAlchemy and the service's models
imported): 7-8 s per service on a busy 2-core machine, most of a restart of ``make run`` with every
schema already current. Reading the scripts' heads here and the database's ``alembic_version`` costs a
fraction of that; only a database behind them is migrated.
"""

from __future__ import annotations

import asyncio
from functools import cache
from pathlib import Path

from .postgres import to_asyncpg_dsn


@cache
def script_heads(ini: Path) -> frozenset[str]:
    """The head revisions of the migration scripts ``ini`` points at (the scripts do not change while
    ``make run`` is up)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(Config(str(ini))).get_heads())


async def at_head(database_url: str, ini: Path) -> bool:
    """True when the database's ``alembic_version`` holds exactly the scripts' heads."""
    import asyncpg

    heads = await asyncio.to_thread(script_heads, ini)
    conn = await asyncpg.connect(to_asyncpg_dsn(database_url), timeout=10)
    try:
        rows = await conn.fetch("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:  # never migrated
        return False
    finally:
        await conn.close()
    return {r["version_num"] for r in rows} == heads
