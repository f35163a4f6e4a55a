"""(g)'s reference: the least a tenant create can cost here -- bare FastAPI + one asyncpg INSERT, no ORM,
no auth, no outbox, no middleware. Run by `python -m uvicorn bench.baseline:create_app --factory` with
BASELINE_DATABASE_URL (a plain postgresql:// URL); the table is created at start-up."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
from fastapi import FastAPI, Request, status
from pydantic import BaseModel, Field

POOL_SIZE = 20  # as many as the tenants service holds (common.db.Database)


class TenantIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    plan: str = "Free"


def create_app() -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(os.environ["BASELINE_DATABASE_URL"], min_size=POOL_SIZE,
                                         max_size=POOL_SIZE)
        assert pool is not None
        await pool.execute("CREATE TABLE IF NOT EXISTS baseline_tenants (id uuid PRIMARY KEY, "
                           "name varchar(200) NOT NULL, plan varchar(100) NOT NULL, "
                           "created_at timestamptz NOT NULL)")
        app.state.pool = pool
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/tenants", status_code=status.HTTP_201_CREATED)
    async def create(request: Request, body: TenantIn) -> dict[str, str]:
        tenant_id, now = uuid.uuid4(), datetime.now(UTC)
        await request.app.state.pool.execute(
            "INSERT INTO baseline_tenants (id, name, plan, created_at) VALUES ($1, $2, $3, $4)",
            tenant_id, body.name, body.plan, now)
        return {"id": str(tenant_id), "name": body.name, "plan": body.plan, "createdAt": now.isoformat()}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
