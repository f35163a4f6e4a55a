"""Inbound webhooks: authenticate, split into items, store new ones. Processing happens after the answer
(`conversations.webhook.worker`)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import Database, commit_each_statement
from common.errors import BadRequest, Forbidden, NotFound, Unauthorized
from common.messaging.wakeup import leads_here, wake
from conversations.channel.repository import ChannelRepository
from conversations.channel.schemas import ChannelStatus, ChannelType
from conversations.channel.service import Credentials, secret_sha256, set_status
from conversations.config import Settings
from conversations.models import Channel
from conversations.webhook.parsing import BadPayload, Item, cloud_items, evolution_items, without_nul
from conversations.webhook.repository import InboundEventRepository
from conversations.webhook.schemas import Received

logger = logging.getLogger("conversations.webhook")
WAKE_CHANNEL = "conversations_inbound"


@dataclass(frozen=True)
class Keys:
    """What authenticating and routing a webhook needs of a channel, kept a few seconds in memory so the hot
    path (acknowledge a provider's POST) is one INSERT."""

    id: uuid.UUID
    type: str
    phone_number_id: str | None
    app_secret: str
    webhook_secret_sha256: str | None


KEYS_TTL_SECONDS = 5.0  # a changed secret or a deleted channel counts on every replica within this
_cache: dict[object, tuple[float, Keys | None]] = {}  # by channel id, and by ("number", phone_number_id)
_loading: dict[object, asyncio.Future[Keys | None]] = {}


def _keys_of(settings: Settings, channel: Channel | None) -> Keys | None:
    if channel is None:
        return None
    return Keys(channel.id, channel.type, channel.phone_number_id, Credentials(settings, channel).app_secret,
                channel.webhook_secret_sha256)


async def _cached(key: object, settings: Settings, load: Callable[[], Awaitable[Channel | None]]) -> Keys | None:
    """A channel's keys from memory; when they expire, ONE request reads them again and the requests
    arriving meanwhile wait for that read (at 200 webhooks/s, each reading and decrypting would stall them)."""
    now = time.monotonic()
    cached = _cache.get(key)
    if cached is not None and cached[0] >= now:
        return cached[1]
    pending = _loading.get(key)
    if pending is not None:
        await asyncio.wait([pending])
        if not pending.cancelled():  # the reading request failed or went away: this one reads
            return pending.result()
        return await _cached(key, settings, load)
    pending = _loading[key] = asyncio.get_running_loop().create_future()
    try:
        keys = _keys_of(settings, await load())
        _cache[key] = (now + KEYS_TTL_SECONDS, keys)
        pending.set_result(keys)
        return keys
    finally:
        _loading.pop(key, None)
        if not pending.done():
            pending.cancel()


async def _read_channel(database: Database, read: Callable[[ChannelRepository], Awaitable[Channel | None]],
                        ) -> Channel | None:
    """A session only when the keys are not in memory (every KEYS_TTL_SECONDS per channel): an acknowledgement
    opens none."""
    async with database.sessionmaker() as session:
        return await read(ChannelRepository(session))


async def _keys(database: Database, settings: Settings, channel_id: uuid.UUID, type: ChannelType) -> Keys:
    keys = await _cached(channel_id, settings, lambda: _read_channel(database, lambda r: r.get(channel_id)))
    if keys is None or keys.type != type:
        raise NotFound("Unknown channel")
    return keys


async def _keys_by_number(database: Database, settings: Settings, number: str) -> Keys | None:
    return await _cached(("number", number), settings,
                         lambda: _read_channel(database, lambda r: r.by_phone_number_id(number)))


def forget(channel_id: uuid.UUID) -> None:
    """This replica forgets a channel's keys at once (after a change made here)."""
    _cache.pop(channel_id, None)
    for key in [k for k in _cache if isinstance(k, tuple)]:
        _cache.pop(key, None)


async def _channel(session: AsyncSession, channel_id: uuid.UUID, type: ChannelType) -> Channel:
    channel = await ChannelRepository(session).get(channel_id)
    if channel is None or channel.type != type:
        raise NotFound("Unknown channel")
    return channel


def _parse(raw: bytes) -> object:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("The body is not JSON") from None
    # JSON can carry a NUL only escaped (`\\u0000`): a body without that text needs no walk.
    return without_nul(body) if b"\\u0000" in raw else body


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


# The inbound worker is woken at once for an item stored after a quiet WAKE_GAP_SECONDS; items stored within the
# gap after a wake-up share ONE more at its end. At 200 webhooks/s a wake-up each (a NOTIFY: the worker runs in
# its own process) was ~13 % of this process's CPU (py-spy), and each woke a batch of one or two items, the
# batch's fixed cost (its transaction, lock, reads and writes) paid for nearly every message.
WAKE_GAP_SECONDS = 0.01
# Per (event loop, engine) -- test apps share a loop, each with its own database: when the worker was last woken,
# and the wake-up due at the end of the gap.
_Key = tuple[asyncio.AbstractEventLoop, object]
_woken: dict[_Key, float] = {}
_wake_due: dict[_Key, asyncio.TimerHandle] = {}


def _wake_worker(database: Database) -> None:
    if leads_here(WAKE_CHANNEL):  # the worker runs in this process (inline): waking it is a free call
        wake(WAKE_CHANNEL, database.engine)
        return
    loop = asyncio.get_running_loop()
    key = (loop, database.engine)
    if key in _wake_due:
        return  # the wake-up at the end of this gap covers this item too
    if loop.time() - _woken.get(key, float("-inf")) >= WAKE_GAP_SECONDS:
        _wake_now(key, database)
    else:
        _wake_due[key] = loop.call_at(_woken[key] + WAKE_GAP_SECONDS, _wake_now, key, database)


def _wake_now(key: _Key, database: Database) -> None:
    _wake_due.pop(key, None)
    for gone in [other for other in _woken if other[0].is_closed()]:  # test apps' loops
        _woken.pop(gone, None)
        _wake_due.pop(gone, None)
    _woken[key] = key[0].time()
    wake(WAKE_CHANNEL, database.engine)


async def _store(database: Database, items: list[tuple[uuid.UUID, Item]]) -> Received:
    """One INSERT of every item (skipping those seen before), committed by itself. One item (the usual POST) is
    one compiled statement on the database's own connection; more, one multi-row statement in a session."""
    rows = [{"id": uuid.uuid4(), "channel_id": channel_id, "kind": i.kind, "external_id": i.external_id,
             "payload": i.data} for channel_id, i in items]
    if len(rows) == 1:
        new = int(await InboundEventRepository.add_one(database, rows[0]))
        if new:
            _wake_worker(database)
        return Received(received=1, new=new)
    if not rows:
        return Received(received=0, new=0)
    async with database.sessionmaker() as session:
        await commit_each_statement(session)
        new = await InboundEventRepository(session).add_new(rows)
    if new:
        _wake_worker(database)
    return Received(received=len(items), new=new)


async def receive_cloud(database: Database, settings: Settings, channel_id: uuid.UUID, raw: bytes,
                        signature: str | None) -> Received:
    """Signature first (X-Hub-Signature-256 over the raw bytes), then parse; each change is routed by its
    `metadata.phone_number_id` (one Meta app may post every number's messages to one URL)."""
    channel = await _keys(database, settings, channel_id, ChannelType.CLOUD_API)
    expected = "sha256=" + hmac.new(channel.app_secret.encode(), raw, hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(signature.strip().lower().encode(), expected.encode()):
        raise Unauthorized("Invalid X-Hub-Signature-256", headers={})
    try:
        items = cloud_items(_parse(raw))
    except BadPayload as exc:
        raise BadRequest(str(exc)) from None
    routed: list[tuple[uuid.UUID, Item]] = []
    for item in items:
        number = item.phone_number_id or channel.phone_number_id
        assert number is not None
        target = channel if number == channel.phone_number_id else await _keys_by_number(database, settings, number)
        # Another number of the same Meta app (signed with the same secret) is routed to its channel.
        if target is None or target.app_secret != channel.app_secret:
            logger.warning("Cloud API webhook on channel %s for unknown phone number id %s: skipped",
                           channel.id, number)
            continue
        routed.append((target.id, item))
    result = await _store(database, routed)
    return Received(received=result.received, new=result.new)


async def receive_evolution(database: Database, settings: Settings, channel_id: uuid.UUID, raw: bytes,
                            secret: str | None) -> Received:
    """The per-channel secret (header set with the webhook) first; then the wrapped body."""
    channel = await _keys(database, settings, channel_id, ChannelType.EVOLUTION)
    if not secret or not channel.webhook_secret_sha256 or not hmac.compare_digest(
            secret_sha256(secret).encode(), channel.webhook_secret_sha256.encode()):
        raise Unauthorized("Invalid or missing webhook secret", headers={})
    try:
        items = evolution_items(_parse(raw))
    except BadPayload as exc:
        raise BadRequest(str(exc)) from None
    return await _store(database, [(channel.id, i) for i in items])
