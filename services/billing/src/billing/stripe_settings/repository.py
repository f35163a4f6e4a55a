from __future__ import annotations

from sqlalchemy import select

from billing.models import StripeSettings
from common.db.repository import Repository


class StripeSettingsRepository(Repository[StripeSettings]):
    model = StripeSettings

    async def current(self, *, for_update: bool = False) -> StripeSettings | None:
        stmt = select(StripeSettings).where(StripeSettings.singleton)
        if for_update:
            stmt = stmt.with_for_update()
        return await self.get_one(stmt)
