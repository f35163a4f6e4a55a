"""Every background loop of the service: stored webhooks, queued messages, pending n8n replies, the idle
sweep, the channel gauge, retention and secret ages. Run by the worker process (`conversations.worker`), or
on the API's event loop when CONVERSATIONS_WORKERS=inline."""

from __future__ import annotations

from common.app import Runtime
from common.observability.secret_age import KeptSecret, track_secret_ages
from common.supervise import every
from conversations.channel.handlers import refresh_channel_gauge
from conversations.config import Settings
from conversations.conversation.handlers import end_idle_conversations
from conversations.conversation.service import OUTBOUND_WAKE
from conversations.models import Channel
from conversations.outbound.worker import OutboundWorker
from conversations.webhook.handlers import purge_inbound
from conversations.webhook.service import WAKE_CHANNEL
from conversations.webhook.worker import InboundWorker

WAKE_CHANNELS = (WAKE_CHANNEL, OUTBOUND_WAKE)  # what commits in another process NOTIFY the workers on


def start_workers(runtime: Runtime) -> None:
    settings: Settings = runtime.settings  # type: ignore[assignment]
    outbound = OutboundWorker(runtime.database, settings)
    inbound = InboundWorker(runtime.database, settings.conversations_worker_poll_seconds, outbound)
    runtime.supervise("inbound-webhooks", inbound.run)
    runtime.supervise("outbound-messages", outbound.run)
    runtime.supervise("pending-replies", lambda: every(settings.conversations_worker_poll_seconds,
                                                       inbound.resume_replies, first=0.0))
    runtime.supervise("idle-conversations", lambda: every(
        settings.conversation_idle_sweep_seconds,
        lambda: end_idle_conversations(runtime.database, settings.conversation_idle_minutes)))
    runtime.supervise("channel-gauge", lambda: every(
        settings.conversations_metrics_refresh_seconds, lambda: refresh_channel_gauge(runtime.database), first=0.0))
    runtime.supervise("inbound-retention", lambda: every(
        3600.0, lambda: purge_inbound(runtime.database, settings.inbound_retention_hours), first=60.0))
    live = (Channel.deleted_at.is_(None),)
    track_secret_ages(runtime, [KeptSecret("whatsapp_access_token", Channel.access_token_encrypted, live),
                                KeptSecret("whatsapp_app_secret", Channel.app_secret_encrypted, live),
                                KeptSecret("evolution_api_key", Channel.api_key_encrypted, live)])
