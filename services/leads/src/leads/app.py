from fastapi import FastAPI

from common.app import create_service_app
from leads.api import routers
from leads.config import Settings
from leads.events import outbox


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Plataforma · Leads",
        description="Sales leads, pipeline and metrics; publishes `lead.*` events.",
        routers=routers,
        outbox=outbox,
    )
