"""Each service's Alembic history builds exactly the schema its models describe: no drift either way
(a model change without its migration, or a hand-written migration that differs from the model)."""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

SERVICES = {"auth": "auth", "tenants": "tenants", "support": "support", "leads": "leads",
            "conversations": "conversations", "billing": "billing", "webhook-dispatcher": "webhook_dispatcher"}


@pytest.mark.parametrize(("service", "package"), SERVICES.items())
async def test_migrations_build_what_the_models_describe(migrated_database, service, package):
    metadata = importlib.import_module(f"{package}.models").Base.metadata
    engine = create_async_engine(await migrated_database(service))
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata))
    finally:
        await engine.dispose()
    assert diff == [], f"{service}: the migrations and the models differ:\n" + "\n".join(map(str, diff))
