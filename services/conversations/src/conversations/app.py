from fastapi import FastAPI

from common.app import create_service_app
from conversations.api import routers
from conversations.config import Settings
from conversations.events import outbox


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Plataforma · Conversations",
        description="Own-operations WhatsApp channels, agents and conversations; publishes `conversation.*` events.",
        routers=routers,
        outbox=outbox,
    )
