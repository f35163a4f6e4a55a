"""All SQL of pipeline stages (STYLE habit 2)."""

from __future__ import annotations

from functools import partial

from sqlalchemy import func, select

from common.db.repository import Repository
from leads.models import Lead, Stage


class DuplicateStage(Exception):
    """The code is taken (`won` False), or a second won stage was attempted (`won` True)."""

    def __init__(self, *, won: bool) -> None:
        super().__init__("a second won stage" if won else "duplicate stage code")
        self.won = won


class StageRepository(Repository[Stage]):
    model = Stage
    violations = {"uq_lead_stages_code": partial(DuplicateStage, won=False),
                  "uq_lead_stages_won": partial(DuplicateStage, won=True)}

    async def list(self) -> list[Stage]:
        return await self.all(select(Stage).order_by(Stage.position, Stage.code))

    async def by_code(self, code: str, *, for_update: bool = False) -> Stage | None:
        stmt = select(Stage).where(Stage.code == code)
        return await self.get_one(stmt.with_for_update() if for_update else stmt)

    async def won(self) -> Stage | None:
        return await self.get_one(select(Stage).where(Stage.is_won))

    async def initial(self) -> Stage | None:
        """The first open (non-final) stage: where new leads start."""
        return await self.get_one(select(Stage).where(~Stage.is_final).order_by(Stage.position, Stage.code).limit(1))

    async def count_open(self) -> int:
        return await self.count(select(Stage).where(~Stage.is_final))

    async def next_position(self) -> int:
        last = (await self.session.execute(select(func.max(Stage.position)))).scalar_one()
        return 10 if last is None else last + 10

    async def leads_in(self, code: str) -> int:
        return await self.count(select(Lead.id).where(Lead.stage == code))

    async def delete(self, stage: Stage) -> None:
        await self.session.delete(stage)
        await self.flush()
