"""The billing service's outbox (topic platform.billing.events)."""

from billing.models import outbox as outbox_table
from common.messaging import Outbox

outbox = Outbox(outbox_table, source="billing")
