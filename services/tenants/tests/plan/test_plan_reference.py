"""A tenant's plan exists, and a plan a tenant is on cannot go away (migration 0007: triggers in place of the
foreign key, which locked the plan's row at every create). Checked in the database itself, as a hand-made
statement would meet it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

PLAN_COLUMNS = "(id, code, name, amount, currency, interval, limits, sort_order, active)"


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    yield conn
    await conn.close()


async def _plan(conn: asyncpg.Connection) -> uuid.UUID:
    plan_id, code = uuid.uuid4(), "ref" + uuid.uuid4().hex[:8]
    await conn.execute(f"INSERT INTO plans {PLAN_COLUMNS} VALUES ($1, $2, $3, 0, 'USD', 'month', '{{}}', 90, true)",
                       plan_id, code, code.title())
    return plan_id


async def _tenant(conn: asyncpg.Connection, plan_id: uuid.UUID) -> uuid.UUID:
    tenant_id = uuid.uuid4()
    await conn.execute("INSERT INTO tenants (id, name, plan_id, status, settings) VALUES ($1, $2, $3, 'ACTIVE', '{}')",
                       tenant_id, f"Ref {tenant_id.hex[:12]}", plan_id)
    return tenant_id


async def test_a_tenant_cannot_name_a_plan_that_does_not_exist(conn):
    with pytest.raises(asyncpg.ForeignKeyViolationError) as refused:
        await _tenant(conn, uuid.uuid4())
    assert refused.value.constraint_name == "fk_tenants_plan_id_plans"
    tenant_id = await _tenant(conn, await _plan(conn))
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("UPDATE tenants SET plan_id = $1 WHERE id = $2", uuid.uuid4(), tenant_id)


async def test_a_plan_a_tenant_is_on_cannot_be_deleted_or_renumbered_and_an_unused_one_can(conn):
    used, unused = await _plan(conn), await _plan(conn)
    tenant_id = await _tenant(conn, used)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("DELETE FROM plans WHERE id = $1", used)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("UPDATE plans SET id = $1 WHERE id = $2", uuid.uuid4(), used)
    await conn.execute("UPDATE plans SET active = false WHERE id = $1", used)  # what the API does instead
    assert await conn.fetchval("SELECT plan_id FROM tenants WHERE id = $1", tenant_id) == used

    assert await conn.execute("DELETE FROM plans WHERE id = $1", unused) == "DELETE 1"
    await conn.execute("DELETE FROM tenants WHERE id = $1", tenant_id)
    assert await conn.execute("DELETE FROM plans WHERE id = $1", used) == "DELETE 1"


async def test_a_plan_deleted_while_a_tenant_is_created_on_it_waits_for_that_create_and_is_refused(conn, database_url):
    """The race a plain read could lose: the create has seen the plan, the delete has not seen the create yet."""
    plan_id = await _plan(conn)
    other = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        creating = conn.transaction()
        await creating.start()
        await _tenant(conn, plan_id)  # not committed yet
        deleting = asyncio.create_task(other.execute("DELETE FROM plans WHERE id = $1", plan_id))
        await asyncio.sleep(0.3)
        assert not deleting.done()  # held until the create ends
        await creating.commit()
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await asyncio.wait_for(deleting, 10)
        assert await conn.fetchval("SELECT count(*) FROM plans WHERE id = $1", plan_id) == 1
    finally:
        await other.close()
