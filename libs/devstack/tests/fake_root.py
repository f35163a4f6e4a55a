"""A throwaway monorepo root: services/<name>/alembic.ini with one migration, the real Caddyfile."""

from __future__ import annotations

import os
from pathlib import Path

from devstack._proc import repo_root

TESTS_DIR = Path(__file__).parent

ALEMBIC_INI = """[alembic]
script_location = %(here)s/migrations

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
"""

ENV_PY = """
import asyncio
import os

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine


def run(connection):
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def main():
    engine = create_async_engine(os.environ["DATABASE_URL"])
    async with engine.connect() as conn:
        await conn.run_sync(run)
        await conn.commit()
    await engine.dispose()


asyncio.run(main())
"""

SCRIPT_MAKO = '''"""${message}"""
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}


def upgrade():
    ${upgrades if upgrades else "pass"}


def downgrade():
    ${downgrades if downgrades else "pass"}
'''

VERSION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table("demo_items", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("demo_items")
"""


def make_fake_root(root: Path, names: list[str]) -> Path:
    for name in names:
        svc = root / "services" / name
        (svc / "migrations" / "versions").mkdir(parents=True)
        (svc / "alembic.ini").write_text(ALEMBIC_INI)
        (svc / "migrations" / "env.py").write_text(ENV_PY)
        (svc / "migrations" / "script.py.mako").write_text(SCRIPT_MAKO)
        (svc / "migrations" / "versions" / "0001_demo.py").write_text(VERSION)
    gw = root / "deploy" / "gateway"
    gw.mkdir(parents=True)
    (gw / "Caddyfile").symlink_to(repo_root() / "deploy" / "gateway" / "Caddyfile")
    return root


def make_fake_packages(dest: Path, packages: list[str]) -> Path:
    """``<package>.app:create_app`` re-exporting the demo app (shadows the real, unfinished ones)."""
    for pkg in packages:
        (dest / pkg).mkdir(parents=True)
        (dest / pkg / "__init__.py").write_text("")
        (dest / pkg / "app.py").write_text("from devstack_demo.app import create_app  # noqa: F401\n")
    return dest


def pythonpath(*dirs: Path) -> str:
    parts = [str(d) for d in dirs] + [str(TESTS_DIR)]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)
