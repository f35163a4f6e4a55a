"""The tenants service's outbox (topic platform.tenants.events, keyed by tenant id; plan.* by plan id)."""

from common.messaging import Outbox
from tenants.models import outbox as outbox_table

outbox = Outbox(outbox_table, source="tenants")
