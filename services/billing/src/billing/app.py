from fastapi import FastAPI

from billing.api import routers
from billing.config import Settings
from billing.events import outbox
from common.app import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Plataforma · Billing",
        description="Stripe billing: subscriptions follow plans; publishes `billing.*` events.",
        routers=routers,
        outbox=outbox,
    )
