"""The deliveries log's time range: `since` is inclusive, `until` exclusive, on the delivery's `createdAt`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import text

from common.testing.checks import assert_problem
from common.testing.webhooks import deliveries_of

API = "/api/platform/webhooks"
US = timedelta(microseconds=1)


async def test_since_and_until_include_and_exclude_at_the_boundaries(owner, receiver, endpoints, database):
    endpoint = await endpoints(receiver.hook().url, ["lead.created"])
    for _ in range(3):  # with the creation's challenge: four deliveries, recorded synchronously
        assert (await owner.post(f"{API}/{endpoint['id']}/test")).status_code == 200
    # Only the challenge and the tests: other tests' real lead.created may reach this endpoint meanwhile.
    mine = {"eventType": "webhook.*"}
    log = await deliveries_of(owner, endpoint["id"], **mine)
    assert len(log) == 4
    # Place them (oldest first, as they were created) just around two instants, a second apart from now.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    end = start + timedelta(hours=1)
    placed = dict(zip(("before", "at_start", "before_end", "at_end"), reversed([d["id"] for d in log]), strict=True))
    times = {"before": start - US, "at_start": start, "before_end": end - US, "at_end": end}
    async with database.sessionmaker() as session:
        for name, delivery_id in placed.items():
            await session.execute(text("UPDATE webhook_deliveries SET created_at = :t WHERE id = :id"),
                                  {"t": times[name], "id": uuid.UUID(delivery_id)})
        await session.commit()

    async def window(**params) -> list[str]:
        by_id = {v: k for k, v in placed.items()}
        return [by_id[d["id"]] for d in await deliveries_of(owner, endpoint["id"], **mine, **params)]

    assert [datetime.fromisoformat(d["createdAt"]) for d in await deliveries_of(owner, endpoint["id"], **mine)] == [
        times[n] for n in ("at_end", "before_end", "at_start", "before")]
    assert await window(since=start.isoformat()) == ["at_end", "before_end", "at_start"]
    assert await window(since=(start + US).isoformat()) == ["at_end", "before_end"]
    assert await window(until=end.isoformat()) == ["before_end", "at_start", "before"]
    assert await window(until=(end + US).isoformat()) == ["at_end", "before_end", "at_start", "before"]
    assert await window(since=start.isoformat(), until=end.isoformat()) == ["before_end", "at_start"]
    assert await window(since=start.isoformat(), until=start.isoformat()) == []
    assert await window(since=end.isoformat(), until=(end + US).isoformat()) == ["at_end"]
    # The same instants written with another offset, or with Z, select the same deliveries.
    brasilia = timezone(timedelta(hours=-3))
    assert await window(since=start.astimezone(brasilia).isoformat(),
                        until=end.astimezone(brasilia).isoformat()) == ["before_end", "at_start"]
    assert await window(since=start.isoformat().replace("+00:00", "Z")) == ["at_end", "before_end", "at_start"]

    for params in ({"since": start.replace(tzinfo=None).isoformat()}, {"until": "yesterday"},
                   {"since": "2026-13-01T00:00:00Z"}, {"since": end.isoformat(), "until": start.isoformat()}):
        resp = await owner.get(f"{API}/{endpoint['id']}/deliveries", params=params)
        assert_problem(resp, 422)
