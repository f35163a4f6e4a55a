"""The dispatcher's outbox (topic platform.webhook-dispatcher.events, keyed by endpoint id) and routing helpers."""

from __future__ import annotations

from common.events import EVENT_TYPES, Envelope
from common.messaging import Outbox
from webhook_dispatcher.models import outbox as outbox_table

outbox = Outbox(outbox_table, source="webhook-dispatcher")

# The aggregate of each event family: its id is the Kafka key (ARCHITECTURE §2) and the ordering key of
# `ordered` endpoints. The consumer does not see the record key, so it is read back from the payload.
_AGGREGATE_FIELDS = {
    "tenant": "tenantId",
    "ticket": "ticketId",
    "lead": "leadId",
    "conversation": "conversationId",
    "billing": "tenantId",
    "webhook": "endpointId",
}


def ordering_key(envelope: Envelope) -> str:
    family = envelope.event.split(".", 1)[0]
    field = _AGGREGATE_FIELDS.get(family)
    value = envelope.data.get(field) if field else None
    if value is None and envelope.tenant_id is not None:
        value = envelope.tenant_id
    return f"{family}:{value if value is not None else envelope.id}"[:200]


def is_routable(name: str) -> bool:
    """Events sent only to the endpoint concerned (verification, test) are never routed by filters.

    Event types this build does not know yet are routed (to `*` and matching prefixes): a publisher
    may add types before the dispatcher is redeployed.
    """
    known = EVENT_TYPES.get(name)
    return known is None or known.routable
