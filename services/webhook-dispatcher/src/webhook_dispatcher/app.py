from __future__ import annotations

from fastapi import FastAPI

from common.app import Runtime, create_service_app
from webhook_dispatcher.api import routers
from webhook_dispatcher.config import Settings
from webhook_dispatcher.delivery.engine import DeliveryEngine
from webhook_dispatcher.delivery.handlers import make_consumer
from webhook_dispatcher.events import outbox


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    engines: list[DeliveryEngine] = []

    def consumers(runtime: Runtime) -> list:  # type: ignore[type-arg]
        engine = DeliveryEngine(settings, runtime.database)
        engines.append(engine)
        return [make_consumer(settings, runtime.database, engine)]

    async def on_startup(app: FastAPI, runtime: Runtime) -> None:
        engine = engines[-1]
        app.state.engine = engine
        await engine.start()

    async def on_shutdown(app: FastAPI, runtime: Runtime) -> None:
        # SIGTERM -> uvicorn ends the lifespan: stop taking work, finish (and record) what is in flight.
        await app.state.engine.stop()

    return create_service_app(
        settings,
        title="Plataforma · Webhook dispatcher",
        description=(
            "Subscriber endpoints for platform events, signed with Standard Webhooks. Every domain event is "
            "consumed from Kafka and delivered at least once to each ACTIVE endpoint whose filter matches, "
            "with retries, replays and a full attempt log."
        ),
        routers=routers,
        outbox=outbox,
        consumers=consumers,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
    )
