"""Periodic job: the channels-by-status gauge (what the WhatsAppChannelDisconnected alert watches)."""

from __future__ import annotations

from common.db import Database
from conversations import metrics
from conversations.channel.repository import ChannelRepository


async def refresh_channel_gauge(database: Database) -> None:
    async with database.sessionmaker() as session:
        metrics.set_channels(await ChannelRepository(session).count_by_type_and_status())
