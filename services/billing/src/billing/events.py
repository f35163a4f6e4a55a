"""The billing service's outbox (topic platform.billing.events)."""

from common.messaging import Outbox

from billing.models import outbox as outbox_table

outbox = Outbox(outbox_table, source="billing")
