from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from common.auth import AnyCaller, PlatformOwner
from common.db import SessionDep
from common.errors import problem_responses
from tenants.plan import service
from tenants.plan.schemas import PlanCode, PlanCreate, PlanRead, PlanUpdate

router = APIRouter(prefix="/api/platform/plans", tags=["plans"])


@router.get("", response_model=list[PlanRead], responses=problem_responses(401, 403, 422))
async def list_plans(session: SessionDep, caller: AnyCaller,
                     active: Annotated[bool | None, Query(description="Only active (true) or inactive (false) "
                                                          "plans; tenant users see active ones only")] = None,
                     ) -> list[PlanRead]:
    """Plans, in their display order."""
    return await service.list_plans(session, caller, active=active)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PlanRead,
             responses=problem_responses(401, 403, 409, 422))
async def create_plan(session: SessionDep, _: PlatformOwner, body: PlanCreate) -> PlanRead:
    """Add a plan; emits `plan.created` (billing then prices it on its next `POST /api/platform/billing/plans/sync`)."""
    return await service.create(session, body)


@router.get("/{code}", response_model=PlanRead, responses=problem_responses(401, 403, 404, 422))
async def get_plan(session: SessionDep, caller: AnyCaller, code: Annotated[PlanCode, Path()]) -> PlanRead:
    return await service.get(session, caller, code)


@router.patch("/{code}", response_model=PlanRead, responses=problem_responses(401, 403, 404, 409, 422))
async def update_plan(session: SessionDep, _: PlatformOwner, code: Annotated[PlanCode, Path()],
                      body: PlanUpdate) -> PlanRead:
    """Change a plan's name, price, interval, limits or active flag; emits `plan.updated` with what changed
    (nothing changed: no event). The code cannot change."""
    return await service.update(session, code, body)
