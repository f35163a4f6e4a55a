"""All SQL of pipeline stages (STYLE habit 2)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from leads.models import Lead, Stage


class DuplicateStage(Exception):
    """The code is taken (`won` False), or a second won stage was attempted (`won` True)."""

    def __init__(self, *, won: bool) -> None:
        super().__init__("a second won stage" if won else "duplicate stage code")
        self.won = won


class StageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list(self) -> list[Stage]:
        stmt = select(Stage).order_by(Stage.position, Stage.code)
        return list((await self.session.execute(stmt)).scalars())

    async def get(self, code: str, *, for_update: bool = False) -> Stage | None:
        stmt = select(Stage).where(Stage.code == code)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def won(self) -> Stage | None:
        return (await self.session.execute(select(Stage).where(Stage.is_won))).scalar_one_or_none()

    async def initial(self) -> Stage | None:
        """The first open (non-final) stage: where new leads start."""
        stmt = select(Stage).where(~Stage.is_final).order_by(Stage.position, Stage.code).limit(1)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def count_open(self) -> int:
        return (await self.session.execute(select(func.count()).where(~Stage.is_final))).scalar_one()

    async def next_position(self) -> int:
        last = (await self.session.execute(select(func.max(Stage.position)))).scalar_one()
        return 10 if last is None else last + 10

    async def leads_in(self, code: str) -> int:
        stmt = select(func.count()).select_from(Lead).where(Lead.stage == code)
        return (await self.session.execute(stmt)).scalar_one()

    async def add(self, stage: Stage) -> None:
        self.session.add(stage)
        await self.flush()

    async def delete(self, stage: Stage) -> None:
        await self.session.delete(stage)
        await self.flush()

    async def flush(self) -> None:
        try:
            async with self.session.begin_nested():
                await self.session.flush()
        except IntegrityError as exc:
            for constraint, won in (("uq_lead_stages_code", False), ("uq_lead_stages_won", True)):
                if constraint in str(exc.orig):
                    raise DuplicateStage(won=won) from exc
            raise
