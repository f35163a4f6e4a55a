from common.messaging.consumer import ConsumedEvent, EventConsumer
from common.messaging.outbox import Outbox
from common.messaging.relay import OutboxRelay
from common.messaging.tables import inbox_table, outbox_table

__all__ = ["ConsumedEvent", "EventConsumer", "Outbox", "OutboxRelay", "inbox_table", "outbox_table"]
