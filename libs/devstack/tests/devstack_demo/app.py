"""Minimal service with the same process contract as the real ones: ``create_app()`` factory,
``/healthz``, ``/readyz`` (database + broker), ``/metrics``, ``/openapi.json`` (OpenAPI 3.1)."""

from __future__ import annotations

import os

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel


class Item(BaseModel):
    name: str
    price: float | None = None


def _dsn() -> str:
    return os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)


def create_app() -> FastAPI:
    if os.environ.get("DEMO_CRASH_ON_START"):
        raise SystemExit("demo: crashing on purpose")
    app = FastAPI(title=f"demo {os.environ.get('SERVICE_NAME', '?')}", version="0.0.1")

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        try:
            conn = await asyncpg.connect(_dsn(), timeout=2)
            await conn.close()
        except Exception as exc:
            return JSONResponse({"status": "db down", "error": str(exc)}, status_code=503)
        return {"status": "ready"}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse("demo_up 1\n")

    @app.post("/api/demo/items", status_code=201)
    async def create_item(item: Item) -> Item:
        return item

    @app.get("/api/demo/env")
    async def env() -> dict:
        keys = [
            "DATABASE_URL",
            "KAFKA_BOOTSTRAP_SERVERS",
            "AUTH_JWKS_URL",
            "SERVICE_NAME",
            "SECRETS_ENCRYPTION_KEYS",
            "PLATFORM_OWNER_EMAIL",
            "PLATFORM_OWNER_PASSWORD",
            "DEMO_PASSTHROUGH",
        ]
        return {k: os.environ.get(k) for k in keys}

    @app.get("/api/demo/tables")
    async def tables() -> list[str]:
        conn = await asyncpg.connect(_dsn(), timeout=2)
        try:
            rows = await conn.fetch("select tablename from pg_tables where schemaname = 'public'")
        finally:
            await conn.close()
        return sorted(r[0] for r in rows)

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def echo(path: str, request: Request) -> dict:
        body = await request.body()
        return {"service": os.environ.get("SERVICE_NAME"), "path": request.url.path, "bytes": len(body)}

    return app
