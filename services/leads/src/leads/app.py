from fastapi import FastAPI

from common.app import Runtime, create_service_app
from common.messaging import EventConsumer
from leads.api import routers
from leads.config import Settings
from leads.events import outbox
from leads.lead.handlers import CONSUMER_NAME, CONVERSATIONS_TOPIC, on_conversation_events
from leads.models import inbox


def consumers(runtime: Runtime) -> list[EventConsumer]:
    return [EventConsumer(runtime.settings, runtime.database, inbox, name=CONSUMER_NAME,
                          topics=[CONVERSATIONS_TOPIC], handler=on_conversation_events)]


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Plataforma · Leads",
        description="Sales leads, configurable pipeline stages, pipeline board and metrics; publishes `lead.*` "
                    "events and turns `conversation.started` into own-operations leads.",
        routers=routers,
        outbox=outbox,
        consumers=consumers,
    )
