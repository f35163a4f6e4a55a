from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from common.auth import PlatformOwner
from common.db import SessionDep
from common.errors import problem_responses
from leads.stage import service
from leads.stage.schemas import StageCreate, StageRead, StageUpdate

# Declared before the lead routes, so `/leads/stages` is never taken for a lead id.
router = APIRouter(prefix="/api/platform/leads/stages", tags=["lead stages"])

CodePath = Annotated[str, Path(min_length=1, max_length=50)]


@router.get("", response_model=list[StageRead], responses=problem_responses(401, 403))
async def list_stages(session: SessionDep, _: PlatformOwner) -> list[StageRead]:
    """The pipeline's stages in order."""
    return await service.list_stages(session)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=StageRead,
             responses=problem_responses(401, 403, 409, 422))
async def create_stage(session: SessionDep, _: PlatformOwner, body: StageCreate) -> StageRead:
    return await service.create(session, body)


@router.get("/{code}", response_model=StageRead, responses=problem_responses(401, 403, 404, 422))
async def get_stage(session: SessionDep, _: PlatformOwner, code: CodePath) -> StageRead:
    return await service.get(session, code)


@router.put("/{code}", response_model=StageRead, responses=problem_responses(401, 403, 404, 409, 422))
async def update_stage(session: SessionDep, _: PlatformOwner, code: CodePath, body: StageUpdate) -> StageRead:
    """Rename, reorder or change flags (won/lost only while the stage holds no lead)."""
    return await service.update(session, code, body)


@router.delete("/{code}", status_code=status.HTTP_204_NO_CONTENT,
               responses=problem_responses(401, 403, 404, 409, 422))
async def delete_stage(session: SessionDep, _: PlatformOwner, code: CodePath) -> Response:
    """Remove a stage that holds no lead (never the won stage nor the last open one)."""
    await service.delete(session, code)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
