"""The billing service's outbox (topic platform.billing.events).

Services publish through `publish`: in a session that `collect_events` marked (the Stripe-event worker's
batch), the events are kept in order and written by `write_collected` as one statement before the commit;
otherwise each goes to the outbox at once. Either way they ride in the caller's transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.models import outbox as outbox_table
from common.events import Envelope, build_event
from common.messaging import Outbox

outbox = Outbox(outbox_table, source="billing")

_COLLECTED = "billing_collected_events"  # Session.info key: [(envelope, key)] waiting for write_collected


def collect_events(session: AsyncSession) -> None:
    session.info[_COLLECTED] = []


async def write_collected(session: AsyncSession) -> None:
    await outbox.add_many(session, session.info.pop(_COLLECTED, []))


async def publish(session: AsyncSession, name: str, data: Any, *, key: Any, tenant_id: Any = None) -> None:
    collected: list[tuple[Envelope, str]] | None = session.info.get(_COLLECTED)
    if collected is None:
        await outbox.publish(session, name, data, key=key, tenant_id=tenant_id)
    else:
        collected.append((build_event(name, data, tenant_id=tenant_id, source=outbox.source), str(key)))
