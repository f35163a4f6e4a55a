"""The support service's outbox (topic platform.support.events)."""

from common.messaging import Outbox
from support.models import outbox as outbox_table

outbox = Outbox(outbox_table, source="support")
