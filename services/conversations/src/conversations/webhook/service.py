"""Inbound webhooks: authenticate, split into items, store new ones. Processing happens after the answer
(`conversations.webhook.worker`)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import BadRequest, Forbidden, NotFound, Unauthorized
from common.messaging.wakeup import wake_after_commit
from conversations.channel.repository import ChannelRepository
from conversations.channel.schemas import ChannelStatus, ChannelType
from conversations.channel.service import Credentials, secret_sha256, set_status
from conversations.config import Settings
from conversations.models import Channel
from conversations.webhook.parsing import BadPayload, Item, cloud_items, evolution_items
from conversations.webhook.repository import InboundEventRepository
from conversations.webhook.schemas import Received

logger = logging.getLogger("conversations.webhook")
WAKE_CHANNEL = "conversations_inbound"


async def _channel(session: AsyncSession, channel_id: uuid.UUID, type: ChannelType) -> Channel:
    channel = await ChannelRepository(session).get(channel_id)
    if channel is None or channel.type != type:
        raise NotFound("Unknown channel")
    return channel


def _parse(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("The body is not JSON") from None


async def verify_subscription(session: AsyncSession, settings: Settings, channel_id: uuid.UUID,
                              mode: str | None, token: str | None, challenge: str | None) -> str:
    """Meta's handshake: the challenge back when the verify token matches (the channel is then CONNECTED)."""
    channel = await _channel(session, channel_id, ChannelType.CLOUD_API)
    expected = Credentials(settings, channel).verify_token
    if mode != "subscribe" or not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Forbidden("Verification failed: wrong mode or verify token")
    if not challenge:
        raise BadRequest("hub.challenge is missing")
    if channel.status in (ChannelStatus.CONNECTING, ChannelStatus.DISCONNECTED):
        await set_status(session, channel, ChannelStatus.CONNECTED, "webhook verified by Meta")
    return challenge


async def _store(session: AsyncSession, channel_id: uuid.UUID, items: list[Item]) -> Received:
    rows = [{"id": uuid.uuid4(), "channel_id": channel_id, "kind": i.kind, "external_id": i.external_id,
             "payload": i.data} for i in items]
    new = await InboundEventRepository(session).add_new(rows)
    if new:
        wake_after_commit(session, WAKE_CHANNEL)
    return Received(received=len(items), new=new)


async def receive_cloud(session: AsyncSession, settings: Settings, channel_id: uuid.UUID, raw: bytes,
                        signature: str | None) -> Received:
    """Signature first (X-Hub-Signature-256 over the raw bytes), then parse; each change is routed by its
    `metadata.phone_number_id` (one Meta app may post every number's messages to one URL)."""
    channel = await _channel(session, channel_id, ChannelType.CLOUD_API)
    secret = Credentials(settings, channel).app_secret
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(signature.strip().lower().encode(), expected.encode()):
        raise Unauthorized("Invalid X-Hub-Signature-256", headers={})
    try:
        items = cloud_items(_parse(raw))
    except BadPayload as exc:
        raise BadRequest(str(exc)) from None
    repo = ChannelRepository(session)
    routed: dict[uuid.UUID, list[Item]] = {}
    targets: dict[str, uuid.UUID | None] = {}
    for item in items:
        number = item.phone_number_id or channel.phone_number_id
        assert number is not None
        if number not in targets:
            other = channel if number == channel.phone_number_id else await repo.by_phone_number_id(number)
            # Another number of the same Meta app (signed with the same secret) is routed to its channel.
            same_app = other is not None and Credentials(settings, other).app_secret == secret
            targets[number] = other.id if other is not None and same_app else None
        target = targets[number]
        if target is None:
            logger.warning("Cloud API webhook on channel %s for unknown phone number id %s: skipped",
                           channel.id, number)
            continue
        routed.setdefault(target, []).append(item)
    received, new = 0, 0
    for target, group in routed.items():
        result = await _store(session, target, group)
        received, new = received + result.received, new + result.new
    return Received(received=received, new=new)


async def receive_evolution(session: AsyncSession, channel_id: uuid.UUID, raw: bytes,
                            secret: str | None) -> Received:
    """The per-channel secret (header set with the webhook) first; then the wrapped body."""
    channel = await _channel(session, channel_id, ChannelType.EVOLUTION)
    if not secret or not channel.webhook_secret_sha256 or not hmac.compare_digest(
            secret_sha256(secret).encode(), channel.webhook_secret_sha256.encode()):
        raise Unauthorized("Invalid or missing webhook secret", headers={})
    try:
        items = evolution_items(_parse(raw))
    except BadPayload as exc:
        raise BadRequest(str(exc)) from None
    return await _store(session, channel.id, items)
