"""The leads service's outbox (topic platform.leads.events, keyed by lead id)."""

from common.messaging import Outbox
from leads.models import outbox as outbox_table

outbox = Outbox(outbox_table, source="leads")
