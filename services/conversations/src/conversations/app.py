import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeout

from common.app import Runtime, create_service_app
from common.errors import problem_response
from conversations.api import public_routes, routers
from conversations.config import Settings
from conversations.events import outbox
from conversations.providers import http
from conversations.worker_process import WorkerProcess
from conversations.workers import start_workers

logger = logging.getLogger("conversations.app")


async def start(app: FastAPI, runtime: Runtime) -> None:
    settings: Settings = runtime.settings  # type: ignore[assignment]
    if settings.conversations_workers == "inline":
        start_workers(runtime)
    elif settings.conversations_workers == "process":
        worker = WorkerProcess(settings)
        app.state.worker_process = worker
        runtime.supervise("worker-process", worker.run)
        app.state.readiness_checks["worker"] = worker.check


async def stop(app: FastAPI, runtime: Runtime) -> None:
    runtime.closers.append(http.close)


async def _busy(_: Request, exc: Exception) -> JSONResponse:
    # Every database connection is in use (a burst of webhooks): a provider retries a 503, so nothing is lost.
    logger.warning("database pool exhausted: %s", exc)
    return problem_response(503, "Service Unavailable", "Busy: try again shortly", headers={"Retry-After": "1"})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        title="Plataforma · Conversations",
        description="Own operations on WhatsApp: channels (Evolution API, Cloud API), agents that answer by "
                    "themselves, conversations and messages; publishes `conversation.*` and "
                    "`channel.status.changed`; receives the providers' webhooks under `/api/webhooks`.",
        routers=routers,
        # The outbox relay runs where the workers run (they write most of its rows): with them in a process of
        # their own, this one only acknowledges webhooks and answers the API (its commits wake the relay there).
        outbox=outbox if settings.conversations_workers == "inline" else None,
        on_startup=start,
        on_shutdown=stop,
        public_routes=public_routes,
    )
    app.add_exception_handler(PoolTimeout, _busy)
    return app
