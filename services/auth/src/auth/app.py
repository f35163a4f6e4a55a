from fastapi import FastAPI

from auth.api import public_paths, routers
from auth.config import Settings
from auth.startup import on_startup
from common.app import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Plataforma · Auth",
        description="Users, login with rotating refresh tokens, and the JWKS every service verifies "
                    "access tokens against. Publishes no events.",
        routers=routers,
        on_startup=on_startup,
        public_routes=public_paths,
    )
