from fastapi import FastAPI

from common.app import Runtime, create_service_app
from common.messaging import EventConsumer
from tenants.api import routers
from tenants.billing.handlers import BILLING_TOPIC, CONSUMER_NAME, on_billing_events
from tenants.config import Settings
from tenants.events import outbox
from tenants.models import inbox


def consumers(runtime: Runtime) -> list[EventConsumer]:
    return [EventConsumer(runtime.settings, runtime.database, inbox, name=CONSUMER_NAME, topics=[BILLING_TOPIC],
                          handler=on_billing_events)]


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Plataforma · Tenants",
        description="Tenant lifecycle (ACTIVE / SUSPENDED / DELETED) and plans. Every change emits a `tenant.*` "
                    "or `plan.*` event; billing's events suspend a tenant that does not pay and reactivate it "
                    "when it does.",
        routers=routers,
        outbox=outbox,
        consumers=consumers,
    )
