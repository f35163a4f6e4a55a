from fastapi import FastAPI

from common.app import create_service_app
from support.api import routers
from support.config import Settings
from support.events import outbox


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Plataforma · Support",
        description="Support tickets and their messages; publishes `ticket.*` events.",
        routers=routers,
        outbox=outbox,
    )
