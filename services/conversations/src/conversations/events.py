"""The conversations service's outbox (topic platform.conversations.events)."""

from common.messaging import Outbox
from conversations.models import outbox as outbox_table

outbox = Outbox(outbox_table, source="conversations")
