"""Channels: the rules for creating, changing and checking a WhatsApp number, and its status changes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from common.api import Page, PageParams
from common.crypto import MASK, mask
from common.db import Database, utcnow
from common.errors import BadGateway, Conflict, NotFound, ProblemError
from conversations.channel.repository import ChannelRepository, EvolutionInstanceRepository
from conversations.channel.schemas import (
    ChannelCreate,
    ChannelCreated,
    ChannelRead,
    ChannelStatus,
    ChannelType,
    ChannelUpdate,
    QrRead,
    StatusRead,
    TestResult,
)
from conversations.config import Settings
from conversations.conversation.repository import CHANNEL_DELETED, MessageRepository
from conversations.dependencies import secret_box
from conversations.events import outbox
from conversations.models import Channel
from conversations.providers import cloud, evolution
from conversations.providers.errors import CredentialsRejected, ProviderError, ProviderUnavailable

logger = logging.getLogger("conversations.channel")

EVOLUTION_STATES = {"open": ChannelStatus.CONNECTED, "connecting": ChannelStatus.CONNECTING,
                    "close": ChannelStatus.DISCONNECTED}


def webhook_url(settings: Settings, channel: Channel) -> str:
    kind = "evolution" if channel.type == ChannelType.EVOLUTION else "whatsapp"
    base = settings.platform_public_url or f"http://localhost:{os.environ.get('GATEWAY_PORT', '8080')}"
    return f"{base.rstrip('/')}/api/webhooks/{kind}/{channel.id}"


def read(settings: Settings, channel: Channel) -> ChannelRead:
    return ChannelRead.model_validate(channel).model_copy(update={"webhook_url": webhook_url(settings, channel)})


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Credentials:
    """A channel's decrypted credentials, for a provider call (never logged, never returned)."""

    def __init__(self, settings: Settings, channel: Channel) -> None:
        box = secret_box(settings.secrets_encryption_keys)
        self.api_key = box.decrypt(channel.api_key_encrypted) if channel.api_key_encrypted else ""
        self.access_token = box.decrypt(channel.access_token_encrypted) if channel.access_token_encrypted else ""
        self.app_secret = box.decrypt(channel.app_secret_encrypted) if channel.app_secret_encrypted else ""
        self.verify_token = box.decrypt(channel.verify_token_encrypted) if channel.verify_token_encrypted else ""


def _store_secret(settings: Settings, channel: Channel, name: str, value: str) -> None:
    setattr(channel, f"{name}_encrypted", secret_box(settings.secrets_encryption_keys).encrypt(value))
    setattr(channel, f"{name}_last4", _visible_part(value))


def _visible_part(secret: str) -> str:
    """What `mask` lets be read back of a secret (nothing of a short one), kept since the secret is stored
    encrypted only."""
    return (mask(secret) or "").removeprefix(MASK)


def _provider_problem(exc: Exception) -> ProblemError:
    if isinstance(exc, CredentialsRejected):
        return BadGateway(f"The provider refused the credentials: {exc}")
    if isinstance(exc, ProviderUnavailable):
        return ProblemError(f"The provider is not reachable: {exc}", status=503)
    return BadGateway(f"The provider refused the request: {exc}")


async def require(session: AsyncSession, channel_id: uuid.UUID, *, for_update: bool = False) -> Channel:
    channel = await ChannelRepository(session).get(channel_id, for_update=for_update)
    if channel is None:
        raise NotFound(f"Channel {channel_id} not found")
    return channel


async def set_status(session: AsyncSession, channel: Channel, status: ChannelStatus, reason: str | None = None
                     ) -> bool:
    """Record a status change and publish it (`channel.status.changed`); nothing when it is the same."""
    if channel.status == status and channel.status_reason == reason:
        return False
    previous = channel.status
    channel.status, channel.status_reason, channel.updated_at = status.value, reason, utcnow()
    if status == ChannelStatus.CONNECTED:
        channel.qr_data_url = None
    await ChannelRepository(session).flush()
    if previous != status.value:
        await outbox.publish(session, "channel.status.changed", {
            "channelId": channel.id, "channelType": channel.type, "name": channel.name, "status": status.value,
            "previousStatus": previous, "reason": reason}, key=channel.id)
    return True


async def create(session: AsyncSession, database: Database, settings: Settings, body: ChannelCreate
                 ) -> ChannelCreated:
    """`database`: for the record of an Evolution instance made here, which must outlive this request's
    transaction when the create fails after the instance was made (see `_make_instance`)."""
    repo = ChannelRepository(session)
    channel = Channel(id=uuid.uuid4(), name=body.name.strip(), type=body.type.value,
                      status=ChannelStatus.CONNECTING.value)
    verify_token: str | None = None
    if body.type == ChannelType.CLOUD_API:
        assert body.phone_number_id and body.access_token and body.app_secret
        if await repo.by_phone_number_id(body.phone_number_id) is not None:
            raise Conflict(f"A channel for phone number id {body.phone_number_id} exists already")
        channel.phone_number_id = body.phone_number_id
        verify_token = body.verify_token or secrets.token_urlsafe(24)
        _store_secret(settings, channel, "access_token", body.access_token)
        _store_secret(settings, channel, "app_secret", body.app_secret)
        _store_secret(settings, channel, "verify_token", verify_token)
        await _add(session, channel)
    else:
        assert body.api_url and body.api_key and body.instance_name
        api_url, name = body.api_url.rstrip("/"), body.instance_name
        if not await repo.lock_instance(api_url, name):
            raise Conflict(f"Another create of instance {name} on {api_url} is under way: try again once it is done")
        if await repo.by_instance(api_url, name) is not None:
            raise Conflict(f"A channel for instance {name} on {api_url} exists already")
        channel.api_url, channel.instance_name = api_url, name
        _store_secret(settings, channel, "api_key", body.api_key)
        secret = secrets.token_urlsafe(32)
        channel.webhook_secret_sha256 = secret_sha256(secret)
        qr = (await _make_instance(session, database, settings, api_url, body.api_key, name)).get("qrcode")
        if isinstance(qr, dict) and isinstance(qr.get("base64"), str) \
                and qr["base64"].startswith("data:image/png;base64,"):
            channel.qr_data_url = qr["base64"]
        try:
            await evolution.set_webhook(api_url, body.api_key, name, webhook_url(settings, channel), secret,
                                        timeout=settings.whatsapp_timeout_seconds)
            await _add(session, channel)  # flushed: a row the database refuses fails here, while we can undo
            await EvolutionInstanceRepository(session).forget(api_url, name)  # the channel holds it from its commit
        except Exception as exc:
            await _undo_instance(database, settings, api_url, body.api_key, name)
            if isinstance(exc, (ProviderError, ProviderUnavailable)):
                raise _provider_problem(exc) from None
            raise
    return ChannelCreated.model_validate(channel).model_copy(
        update={"webhook_url": webhook_url(settings, channel), "verify_token_plain": verify_token})


async def _add(session: AsyncSession, channel: Channel) -> None:
    await ChannelRepository(session).add(channel)
    await outbox.publish(session, "channel.status.changed", {
        "channelId": channel.id, "channelType": channel.type, "name": channel.name, "status": channel.status,
        "previousStatus": None, "reason": "created"}, key=channel.id)


async def _make_instance(session: AsyncSession, database: Database, settings: Settings, api_url: str,
                         api_key: str, name: str) -> dict[str, Any]:
    """The Evolution instance of a new channel. Recorded as made here BEFORE the server is asked (its own
    transaction, kept should this create fail): a create whose answer is lost (timeout, 5xx) may still have made
    it, and the next create of this name then adopts it. When the name is in use by an instance recorded before
    this create (one that failed after making it, or a deleted channel's the server would not delete), adopted
    with a fresh QR. A name in use by anyone else is a 409."""
    timeout = settings.whatsapp_timeout_seconds
    adoptable = await EvolutionInstanceRepository(session).made_here(api_url, name)
    if not adoptable:
        await _journal(database, api_url, name, made=True)
    try:
        return await evolution.create_instance(api_url, api_key, name, timeout=timeout)
    except ProviderUnavailable as exc:
        raise _provider_problem(exc) from None  # the record stays: made or not, the next create finds out
    except ProviderError as exc:
        in_use = exc.status in (403, 409)  # Evolution v2 answers 403 for a name in use
        if not adoptable:
            await _journal(database, api_url, name, made=False)  # answered: nothing was made by this create
        if not in_use:
            raise _provider_problem(exc) from None
        if not adoptable:
            raise Conflict(f"The Evolution server refused the instance: {exc}") from None
    logger.info("Evolution instance %s on %s: made here earlier, held by no channel; adopted", name, api_url)
    try:
        return {"qrcode": await evolution.connect(api_url, api_key, name, timeout=timeout)}
    except (ProviderError, ProviderUnavailable) as exc:
        raise _provider_problem(exc) from None


async def _journal(database: Database, api_url: str, name: str, *, made: bool) -> None:
    """Record (or forget) an instance as made here, committed at once whatever becomes of the request."""
    async with database.sessionmaker() as journal, journal.begin():
        instances = EvolutionInstanceRepository(journal)
        await (instances.record(api_url, name) if made else instances.forget(api_url, name))


async def _undo_instance(database: Database, settings: Settings, api_url: str, api_key: str, name: str) -> None:
    """Best effort, after a create failed past making the instance: delete it again. Should that fail too, its
    record stays and the next create of this name adopts it."""
    try:
        await evolution.delete_instance(api_url, api_key, name, timeout=settings.whatsapp_timeout_seconds)
    except (ProviderError, ProviderUnavailable) as exc:
        logger.warning("Evolution instance %s on %s left by a failed create (the next create adopts it): %s",
                       name, api_url, exc)
        return
    try:
        await _journal(database, api_url, name, made=False)
    except Exception:
        logger.warning("Evolution instance %s on %s deleted; its record was not", name, api_url, exc_info=True)


async def list_channels(session: AsyncSession, settings: Settings, *, type: ChannelType | None,
                        status: ChannelStatus | None, page: PageParams) -> Page[ChannelRead]:
    rows, total = await ChannelRepository(session).page(type=type, status=status, limit=page.limit,
                                                        offset=page.offset)
    return Page[ChannelRead].of(rows, total, page, read=lambda c: read(settings, c))


async def update(session: AsyncSession, settings: Settings, channel_id: uuid.UUID, body: ChannelUpdate
                 ) -> ChannelRead:
    channel = await require(session, channel_id, for_update=True)
    fields = body.model_dump(exclude_unset=True)
    if fields.get("name") is not None:
        channel.name = fields["name"].strip()
    allowed = {"EVOLUTION": {"api_key"}, "CLOUD_API": {"access_token", "verify_token", "app_secret"}}[channel.type]
    given = {k for k, v in fields.items() if k != "name" and v is not None}
    if given - allowed:
        raise ProblemError(f"a {channel.type} channel does not take {', '.join(sorted(given - allowed))}", status=422)
    for name in given:
        _store_secret(settings, channel, name, fields[name])
    channel.updated_at = utcnow()
    if given and channel.status == ChannelStatus.ERROR:
        # New credentials: try again (queued messages flow once the channel is usable).
        await set_status(session, channel, ChannelStatus.CONNECTING if channel.type == ChannelType.EVOLUTION
                         else ChannelStatus.CONNECTED, "credentials updated")
    await ChannelRepository(session).flush()
    return read(settings, channel)


async def delete(session: AsyncSession, settings: Settings, channel_id: uuid.UUID) -> None:
    """Soft delete: its conversations and messages stay readable; its webhooks answer 404 from now on. Its
    messages still queued are not sent: FAILED ("channel deleted"), as are any an agent queues after (the
    outbound worker's claim)."""
    channel = await require(session, channel_id, for_update=True)
    channel.deleted_at = utcnow()
    failed = await MessageRepository(session).fail_queued(channel.id, CHANNEL_DELETED, channel.deleted_at)
    if failed:
        logger.info("channel %s deleted: %d queued messages will not be sent", channel.id, failed)
    if channel.type == ChannelType.EVOLUTION and channel.api_url and channel.instance_name:
        try:
            await evolution.delete_instance(channel.api_url, Credentials(settings, channel).api_key,
                                            channel.instance_name, timeout=settings.whatsapp_timeout_seconds)
        except (ProviderError, ProviderUnavailable) as exc:
            logger.warning("channel %s: Evolution instance not deleted: %s", channel.id, exc)
            # Still ours: a new channel of this instance name adopts it instead of meeting "name in use".
            await EvolutionInstanceRepository(session).record(channel.api_url, channel.instance_name)
    await ChannelRepository(session).flush()


async def qr(session: AsyncSession, settings: Settings, channel_id: uuid.UUID) -> QrRead:
    channel = await require(session, channel_id, for_update=True)
    if channel.type != ChannelType.EVOLUTION:
        raise Conflict("Only Evolution channels are paired with a QR code")
    if channel.status == ChannelStatus.CONNECTED:
        raise Conflict("The channel is connected: there is no QR code to scan")
    assert channel.api_url and channel.instance_name
    try:
        fresh = await evolution.connect(channel.api_url, Credentials(settings, channel).api_key,
                                        channel.instance_name, timeout=settings.whatsapp_timeout_seconds)
    except (ProviderError, ProviderUnavailable) as exc:
        if not channel.qr_data_url:
            raise _provider_problem(exc) from None
        fresh = {}  # the provider is away: the last QR it sent by webhook is the best we have
    data_url = fresh.get("base64") if isinstance(fresh.get("base64"), str) else None
    if data_url and data_url.startswith("data:image/png;base64,"):
        channel.qr_data_url = data_url
    if not channel.qr_data_url:
        raise BadGateway("The Evolution server sent no QR code (is the instance connected already?)")
    await ChannelRepository(session).flush()
    return QrRead(status=ChannelStatus(channel.status), data_url=channel.qr_data_url,
                  pairing_code=fresh.get("pairingCode") if isinstance(fresh.get("pairingCode"), str) else None,
                  count=fresh.get("count") if isinstance(fresh.get("count"), int) else None)


def qr_png(qr_read: QrRead) -> bytes:
    try:
        return base64.b64decode(qr_read.data_url.split(",", 1)[1], validate=True)
    except (IndexError, binascii.Error):
        raise BadGateway("The QR code the provider sent is not a PNG") from None


async def status(session: AsyncSession, settings: Settings, channel_id: uuid.UUID) -> StatusRead:
    """The stored status; for Evolution, the server's live state too (and the status follows it)."""
    channel = await require(session, channel_id, for_update=True)
    state = None
    if channel.type == ChannelType.EVOLUTION and channel.status != ChannelStatus.ERROR:
        assert channel.api_url and channel.instance_name
        try:
            state = await evolution.connection_state(channel.api_url, Credentials(settings, channel).api_key,
                                                     channel.instance_name, timeout=settings.whatsapp_timeout_seconds)
            await set_status(session, channel, EVOLUTION_STATES.get(state, ChannelStatus.DISCONNECTED))
        except (ProviderError, ProviderUnavailable) as exc:
            logger.info("channel %s: state not read: %s", channel.id, exc)
    return StatusRead(status=ChannelStatus(channel.status), status_reason=channel.status_reason,
                      provider_state=state)


async def test(session: AsyncSession, settings: Settings, channel_id: uuid.UUID) -> TestResult:
    """Check the credentials against the provider; a refusal puts the channel in ERROR, success clears it."""
    channel = await require(session, channel_id, for_update=True)
    creds = Credentials(settings, channel)
    timeout = settings.whatsapp_timeout_seconds
    try:
        if channel.type == ChannelType.CLOUD_API:
            assert channel.phone_number_id
            info = await cloud.check(settings.whatsapp_graph_api_base, channel.phone_number_id, creds.access_token,
                                     timeout=timeout)
            detail = f"Phone number {info.get('display_phone_number') or channel.phone_number_id} answers"
            await set_status(session, channel, ChannelStatus.CONNECTED)
        else:
            assert channel.api_url and channel.instance_name
            state = await evolution.connection_state(channel.api_url, creds.api_key, channel.instance_name,
                                                     timeout=timeout)
            detail = f"Evolution instance state: {state}"
            await set_status(session, channel, EVOLUTION_STATES.get(state, ChannelStatus.DISCONNECTED))
    except CredentialsRejected as exc:
        await set_status(session, channel, ChannelStatus.ERROR, f"credentials rejected: {exc}"[:500])
        return TestResult(ok=False, status=ChannelStatus(channel.status), detail=str(exc))
    except (ProviderError, ProviderUnavailable) as exc:
        return TestResult(ok=False, status=ChannelStatus(channel.status), detail=str(exc))
    return TestResult(ok=True, status=ChannelStatus(channel.status), detail=detail)
