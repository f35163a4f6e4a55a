"""The webhook dispatcher: subscriber endpoints API + Kafka consumer + in-process delivery worker (ARCHITECTURE §3).

    Kafka (every domain topic, group "webhook-dispatcher")
      -> worker.consumer.route_batch: inbox + event row + one delivery per matching ACTIVE endpoint,
         one statement per batch, offsets committed after it
      -> worker.DeliveryWorker: per-endpoint lanes (bounded queue, concurrency cap, rate limit), signed
         POST through the SSRF-guarded transport (outbound/), batched recording of every attempt,
         retries (memory for short delays, DB poller with FOR UPDATE SKIP LOCKED + leases otherwise)
    API (webhook/, delivery/, event_type/): /api/platform/webhooks/*, platform owner only. It gets the
      settings, the secret box and the outbound transport as dependencies (never the worker): it writes
      rows and NOTIFYs, and every replica's worker picks the change up.
    N8N bridge (n8n/): /api/platform/integrations/n8n (URL + encrypted key, connection test) and
      /api/platform/n8n/{flows,templates}. A flow with a Webhook trigger is backed by an endpoint of kind
      N8N_FLOW (`{n8n}/webhook/{path}`, own secret, trusted: the owner's n8n is exempt from the SSRF policy,
      never challenged), ACTIVE while the flow is active in n8n and PAUSED otherwise, so flows get events
      through this same machinery. Those endpoints are hidden from the webhooks API.
"""

from __future__ import annotations

from fastapi import FastAPI

from common.app import Runtime, create_service_app
from common.crypto import SecretBox
from common.db import Database
from common.observability.secret_age import KeptSecret, track_secret_ages
from webhook_dispatcher.api import routers
from webhook_dispatcher.config import Settings
from webhook_dispatcher.events import outbox
from webhook_dispatcher.models import N8nSettings, WebhookEndpoint
from webhook_dispatcher.outbound.transport import WebhookTransport
from webhook_dispatcher.worker.consumer import make_consumer
from webhook_dispatcher.worker.worker import DeliveryWorker


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    workers: list[DeliveryWorker] = []

    def consumers(runtime: Runtime) -> list:  # type: ignore[type-arg]
        # The first hook of the lifespan: what the API's handlers get as dependencies (see
        # webhook_dispatcher.dependencies), shared with the worker. Made here, not in create_app, so an app
        # can be built without keys (OpenAPI, Postman).
        app.state.secret_box = SecretBox(settings.secrets_encryption_keys)
        app.state.transport = WebhookTransport(settings)
        worker = DeliveryWorker(settings, runtime.database, box=app.state.secret_box,
                                transport=app.state.transport)
        workers.append(worker)
        # The consumer's one statement per batch (see delivery.sql.ROUTE) keeps its first plan: inserts
        # through unique indexes and a join with the small endpoints table cannot degrade as tables grow,
        # and planning that statement anew for every batch cost 2-3 ms of API-to-webhook latency (bench (d)).
        routing = Database(settings.database_url, pool_size=2, custom_plans=False)
        runtime.closers.append(routing.dispose)
        return [make_consumer(settings, routing, worker)]

    async def on_startup(app: FastAPI, runtime: Runtime) -> None:
        worker = workers[-1]
        app.state.worker = worker
        app.state.readiness_checks["delivery"] = worker.check_ready
        await worker.start()
        track_secret_ages(runtime, [KeptSecret("webhook_signing_secret", WebhookEndpoint.secret_encrypted,
                                               (WebhookEndpoint.deleted_at.is_(None),)),
                                    KeptSecret("n8n_api_key", N8nSettings.api_key_encrypted)])

    async def on_shutdown(app: FastAPI, runtime: Runtime) -> None:
        # SIGTERM -> uvicorn ends the lifespan: stop taking work, finish (and record) what is in flight.
        await app.state.worker.stop()
        await app.state.transport.close()

    app = create_service_app(
        settings,
        title="Plataforma · Webhook dispatcher",
        description=(
            "Subscriber endpoints for platform events, signed with Standard Webhooks. Every domain event is "
            "consumed from Kafka and delivered at least once to each ACTIVE endpoint whose filter matches, "
            "with retries, replays and a full attempt log. The N8N bridge feeds n8n workflows (flows) the same "
            "way: create or register them, activate them, read their executions next to the delivery log."
        ),
        routers=routers,
        outbox=outbox,
        consumers=consumers,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
    )
    return app
