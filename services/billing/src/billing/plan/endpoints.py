from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from billing.context import BillingDep
from billing.plan import service
from billing.plan.schemas import PlanCode, PlanRead, PlanUpdate
from common.auth import PlatformOwner
from common.db import SessionDep
from common.errors import problem_responses

router = APIRouter(prefix="/api/platform/billing/plans", tags=["billing"])


@router.get("", response_model=list[PlanRead], responses=problem_responses(401, 403))
async def list_plans(session: SessionDep, _: PlatformOwner) -> list[PlanRead]:
    """Each plan (as tenants published it) and the Stripe price that bills it (null until synced or mapped)."""
    return await service.list_plans(session)


@router.post("/sync", response_model=list[PlanRead], responses=problem_responses(401, 403, 409, 502, 503))
async def sync_plans(session: SessionDep, billing: BillingDep, _: PlatformOwner) -> list[PlanRead]:
    """Find (by lookup key) or create one Product + recurring Price per plan not mapped by hand. Idempotent."""
    return await service.sync(session, billing)


@router.put("/{code}", response_model=PlanRead, responses=problem_responses(401, 403, 404, 409, 422, 502, 503))
async def update_plan(session: SessionDep, billing: BillingDep, _: PlatformOwner,
                      code: Annotated[PlanCode, Path()], body: PlanUpdate) -> PlanRead:
    """Map the plan to an existing recurring Stripe price that bills its terms (instead of the synced one).
    Plans and their terms are tenants' (`/api/platform/plans`)."""
    return await service.update(session, billing, code, body)
