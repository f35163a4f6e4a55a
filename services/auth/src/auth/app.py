from fastapi import FastAPI

from auth.api import public_paths, routers
from auth.config import Settings
from auth.startup import on_startup
from common.app import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Plataforma · Auth",
        description="Users, login with rotating refresh tokens, the JWKS every service verifies "
                    "access tokens against, and platform API keys for machines (with the introspection "
                    "endpoint every service checks them with). Publishes no events.",
        routers=routers,
        on_startup=on_startup,
        public_routes=public_paths,
    )
