"""Whether a service's database already is at its Alembic head, checked without a migration process.

``alembic upgrade head`` runs in a Python process of its own (alembic, SQLAlchemy and the service's models
imported): 7-8 s per service on a busy 2-core machine, most of a restart of ``make run`` with every
schema already current. Reading the scripts' heads here and the database's ``alembic_version`` costs
milliseconds; only a database behind them is migrated.
"""

from __future__ import annotations

import ast
import configparser
from functools import cache
from pathlib import Path

from .postgres import to_asyncpg_dsn


@cache
def script_heads(ini: Path) -> frozenset[str]:
    """The head revisions of the migration scripts of ``ini`` (``<script_location>/versions/*.py``), read
    from their ``revision`` / ``down_revision`` literals without importing anything (alembic and
    SQLAlchemy would cost the supervisor seconds of CPU while the services import). A script this cannot
    read raises: the caller then migrates, and alembic decides."""
    revisions: set[str] = set()
    parents: set[str] = set()
    config = configparser.ConfigParser(defaults={"here": str(ini.parent)})
    config.read(ini)
    for script in sorted((Path(config.get("alembic", "script_location")) / "versions").glob("*.py")):
        found = _literals(script, ("revision", "down_revision"))
        if "revision" not in found:
            raise ValueError(f"{script}: no literal revision")
        revisions.add(found["revision"])
        down = found.get("down_revision")
        parents.update([down] if isinstance(down, str) else (down or ()))
    if not revisions:
        raise ValueError(f"no migration scripts next to {ini}")
    return frozenset(revisions - parents)


def _literals(script: Path, names: tuple[str, ...]) -> dict[str, object]:
    values: dict[str, object] = {}
    for node in ast.parse(script.read_text()).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        if target is None or node.value is None:
            continue
        # `revision = "0003"`, `revision: str = "0003"`, or both at once: `revision, down_revision = "0003", "0002"`
        both = isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
        pairs = zip(target.elts, node.value.elts, strict=True) if both else [(target, node.value)]
        for name, value in pairs:
            if isinstance(name, ast.Name) and name.id in names:
                values[name.id] = ast.literal_eval(value)
    return values


async def at_head(database_url: str, ini: Path) -> bool:
    """True when the database's ``alembic_version`` holds exactly the scripts' heads."""
    import asyncpg

    heads = script_heads(ini)
    conn = await asyncpg.connect(to_asyncpg_dsn(database_url), timeout=10)
    try:
        rows = await conn.fetch("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:  # never migrated
        return False
    finally:
        await conn.close()
    return {r["version_num"] for r in rows} == heads
