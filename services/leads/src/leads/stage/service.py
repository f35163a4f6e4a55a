"""Pipeline stages are data: owners may add, rename, reorder and remove them within these rules.

- at most one won stage (where convert puts a lead; without one, convert answers 409) and at least one
  open stage (where leads start);
- won and lost stages are final; a lead never leaves a final stage;
- a stage holding leads keeps its won/lost flags and cannot be deleted.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Conflict, Unprocessable, found
from leads.models import Stage
from leads.stage.repository import DuplicateStage, StageRepository
from leads.stage.schemas import StageCreate, StageRead, StageUpdate


async def list_stages(session: AsyncSession) -> list[StageRead]:
    return [StageRead.model_validate(s) for s in await StageRepository(session).list()]


async def get(session: AsyncSession, code: str) -> StageRead:
    return StageRead.model_validate(await _get(session, code))


async def _get(session: AsyncSession, code: str, *, for_update: bool = False) -> Stage:
    stage = await StageRepository(session).by_code(code.strip().upper(), for_update=for_update)
    return found(stage, f"Stage {code!r} not found")


async def require(session: AsyncSession, code: str) -> Stage:
    """A stage named in a request body or filter: unknown is a validation error (422), not a 404."""
    stage = await StageRepository(session).by_code(code)
    if stage is None:
        codes = ", ".join(s.code for s in await StageRepository(session).list())
        raise Unprocessable(f"Unknown stage {code!r}; stages: {codes}")
    return stage


async def initial(session: AsyncSession) -> Stage:
    stage = await StageRepository(session).initial()
    if stage is None:
        raise Conflict("No open stage is configured for new leads")
    return stage


async def won(session: AsyncSession) -> Stage:
    stage = await StageRepository(session).won()
    if stage is None:
        raise Conflict("No won stage is configured")
    return stage


async def create(session: AsyncSession, body: StageCreate) -> StageRead:
    repo = StageRepository(session)
    position = body.position if body.position is not None else await repo.next_position()
    stage = Stage(id=uuid.uuid4(), code=body.code, name=body.name, position=position, is_won=body.is_won,
                  is_lost=body.is_lost, is_final=bool(body.is_final))
    try:
        await repo.add(stage)
    except DuplicateStage as exc:
        raise Conflict("There is already a won stage" if exc.won else f"Stage {body.code} already exists") from None
    return StageRead.model_validate(stage)


async def update(session: AsyncSession, code: str, body: StageUpdate) -> StageRead:
    repo = StageRepository(session)
    stage = await _get(session, code, for_update=True)
    fields = body.model_dump(exclude_unset=True)
    if any(v is None for v in fields.values()):
        raise Unprocessable("Stage fields cannot be null")
    won_ = fields.get("is_won", stage.is_won)
    lost = fields.get("is_lost", stage.is_lost)
    final = fields["is_final"] if "is_final" in fields else stage.is_final or won_ or lost
    if won_ and lost:
        raise Unprocessable("A stage cannot be both won and lost")
    if (won_ or lost) and not final:
        raise Unprocessable("Won and lost stages are final")
    flags_change = (won_, lost, final) != (stage.is_won, stage.is_lost, stage.is_final)
    if (won_, lost) != (stage.is_won, stage.is_lost) and await repo.leads_in(stage.code):
        raise Conflict(f"Stage {stage.code} holds leads; its won/lost flags cannot change")
    if final and not stage.is_final and await repo.count_open() <= 1:
        raise Conflict("At least one open stage is needed for new leads")
    if "name" in fields:
        stage.name = fields["name"]
    if "position" in fields:
        stage.position = fields["position"]
    if flags_change:
        stage.is_won, stage.is_lost, stage.is_final = won_, lost, final
    try:
        await repo.flush()
    except DuplicateStage:
        raise Conflict("There is already a won stage") from None
    return StageRead.model_validate(stage)


async def delete(session: AsyncSession, code: str) -> None:
    repo = StageRepository(session)
    stage = await _get(session, code, for_update=True)
    if not stage.is_final and await repo.count_open() <= 1:
        raise Conflict("At least one open stage is needed for new leads")
    if await repo.leads_in(stage.code):
        raise Conflict(f"Stage {stage.code} holds leads; move them first")
    await repo.delete(stage)
