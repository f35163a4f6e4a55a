from fastapi import FastAPI

from common.app import create_service_app
from tenants.api import routers
from tenants.config import Settings
from tenants.events import outbox


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Plataforma · Tenants",
        description="Tenant lifecycle (ACTIVE / SUSPENDED / DELETED) and plans. Every change emits a `tenant.*` event.",
        routers=routers,
        outbox=outbox,
    )
