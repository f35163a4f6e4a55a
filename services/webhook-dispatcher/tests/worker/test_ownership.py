"""Endpoint ownership between replicas: one owner at a time, given up when idle, taken over when stale."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from webhook_dispatcher.worker.ownership import Ownership


async def test_one_owner_at_a_time_idle_endpoints_are_given_up_and_stale_leases_taken_over(
        database, endpoints, receiver):
    endpoint = uuid.UUID((await endpoints(receiver.hook().url, ["lead.created"]))["id"])
    a = Ownership(database, uuid.uuid4(), lease_seconds=30)
    b = Ownership(database, uuid.uuid4(), lease_seconds=30)

    assert await a.acquire([endpoint]) == {endpoint}
    assert await b.acquire([endpoint]) == set()  # a holds it
    assert await a.renew(lambda: {endpoint}) == set() and a.holds(endpoint)  # busy: kept
    assert await b.acquire([endpoint]) == set()

    assert await a.renew(set) == set() and not a.holds(endpoint)  # idle: given up ...
    assert await b.acquire([endpoint]) == {endpoint}  # ... so b may take it

    # b stalls past its lease: a takes the endpoint over, and b learns it at its next renewal.
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE webhook_endpoint_owners SET lease_until = now() - interval '1 second' "
                                "WHERE endpoint_id = :id"), {"id": endpoint})
    assert await a.acquire([endpoint]) == {endpoint}
    assert await b.renew(lambda: {endpoint}) == {endpoint} and not b.holds(endpoint)

    # Work for an endpoint it does not own (e.g. left over after a stall) is reported for handing back.
    assert await b.renew(lambda: {endpoint}) == {endpoint}
    await a.release_all()
    assert await b.acquire([endpoint]) == {endpoint}
    await b.release_all()
