import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeout

from common.app import Runtime, create_service_app
from common.errors import problem_response
from common.observability.secret_age import KeptSecret, track_secret_ages
from common.supervise import every
from conversations.api import public_routes, routers
from conversations.channel.handlers import refresh_channel_gauge
from conversations.config import Settings
from conversations.conversation.handlers import end_idle_conversations
from conversations.events import outbox
from conversations.models import Channel
from conversations.outbound.worker import OutboundWorker
from conversations.providers import http
from conversations.webhook.handlers import purge_inbound
from conversations.webhook.worker import InboundWorker

logger = logging.getLogger("conversations.app")


async def start_workers(app: FastAPI, runtime: Runtime) -> None:
    settings: Settings = runtime.settings  # type: ignore[assignment]
    inbound = InboundWorker(runtime.database, settings.conversations_worker_poll_seconds)
    outbound = OutboundWorker(runtime.database, settings)
    app.state.workers = (inbound, outbound)
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


async def stop(app: FastAPI, runtime: Runtime) -> None:
    runtime.closers.append(http.close)


async def _busy(_: Request, exc: Exception) -> JSONResponse:
    # Every database connection is in use (a burst of webhooks): a provider retries a 503, so nothing is lost.
    logger.warning("database pool exhausted: %s", exc)
    return problem_response(503, "Service Unavailable", "Busy: try again shortly", headers={"Retry-After": "1"})


def create_app(settings: Settings | None = None) -> FastAPI:
    app = create_service_app(
        settings or Settings(),
        title="Plataforma · Conversations",
        description="Own operations on WhatsApp: channels (Evolution API, Cloud API), agents that answer by "
                    "themselves, conversations and messages; publishes `conversation.*` and "
                    "`channel.status.changed`; receives the providers' webhooks under `/api/webhooks`.",
        routers=routers,
        outbox=outbox,
        on_startup=start_workers,
        on_shutdown=stop,
        public_routes=public_routes,
    )
    app.add_exception_handler(PoolTimeout, _busy)
    return app
