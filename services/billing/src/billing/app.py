from fastapi import FastAPI

from billing.api import routers
from billing.config import Settings
from billing.context import Billing
from billing.events import outbox
from billing.models import StripeSettings, inbox
from billing.subscription import grace
from billing.sync import service as sync
from billing.sync.handlers import CONSUMER_NAME, TENANTS_TOPIC, tenant_events_handler
from billing.webhook import worker as webhook_worker
from billing.webhook.endpoints import PUBLIC_PATH
from common.app import Runtime, create_service_app
from common.messaging import EventConsumer
from common.observability.secret_age import KeptSecret, track_secret_ages
from common.supervise import every


def create_app(settings: Settings | None = None, *, consume: bool = True) -> FastAPI:
    """`consume=False`: the API and workers without the tenant-events consumer (e.g. a fuzz run next to a
    consuming app, which a second member of the group would take partitions from)."""
    settings = settings or Settings()
    billing = Billing(settings=settings)

    def consumers(runtime: Runtime) -> list[EventConsumer]:
        return [EventConsumer(runtime.settings, runtime.database, inbox, name=CONSUMER_NAME, topics=[TENANTS_TOPIC],
                              handler=tenant_events_handler(billing))]

    async def start_workers(app: FastAPI, runtime: Runtime) -> None:
        billing.database = runtime.database
        runtime.supervise("stripe-events", lambda: webhook_worker.run_worker(runtime.database, billing))
        runtime.supervise("stripe-sync", lambda: sync.run_worker(runtime.database, billing))
        runtime.supervise("billing-grace", lambda: every(settings.billing_grace_check_seconds,
                                                         lambda: grace.check(runtime.database, billing)))
        runtime.supervise("billing-retention", lambda: every(3600.0, lambda: grace.purge(runtime.database, billing),
                                                             first=60.0))
        track_secret_ages(runtime, [KeptSecret("stripe_secret_key", StripeSettings.secret_key_encrypted),
                                    KeptSecret("stripe_webhook_secret", StripeSettings.webhook_secret_encrypted)])

    app = create_service_app(
        settings,
        title="Plataforma · Billing",
        description="Stripe billing: every tenant subscribed on its plan's price, Stripe's webhook applied "
                    "exactly once whatever the order; publishes `billing.*` events.",
        routers=routers,
        outbox=outbox,
        consumers=consumers if consume else None,
        on_startup=start_workers,
        public_routes=[PUBLIC_PATH],
    )
    app.state.billing = billing
    return app
