from __future__ import annotations

from sqlalchemy import func, literal, or_, select, update

from billing.models import PlanPrice
from common.db.repository import Repository


class PlanRepository(Repository[PlanPrice]):
    model = PlanPrice

    async def list(self) -> list[PlanPrice]:
        return await self.all(select(PlanPrice).order_by(PlanPrice.amount, PlanPrice.code))

    async def by_code(self, code: str, *, for_update: bool = False) -> PlanPrice | None:
        stmt = select(PlanPrice).where(func.lower(PlanPrice.code) == code.lower())
        return await self.get_one(stmt.with_for_update() if for_update else stmt)

    async def by_name_or_code(self, value: str) -> PlanPrice | None:
        v = value.lower()
        return await self.get_one(select(PlanPrice).where(or_(func.lower(PlanPrice.code) == v,
                                                              func.lower(PlanPrice.name) == v)))

    async def by_price(self, price_id: str) -> PlanPrice | None:
        return await self.get_one(select(PlanPrice).where(PlanPrice.stripe_price_id == price_id).limit(1))

    async def release_name(self, name: str, *, keep: str) -> None:
        """Another plan's copy still named `name` is stale: tenants' plan names are unique, so that plan was renamed
        by an event not applied yet (plan events are keyed by plan: partitions, and their order, differ). It is
        named "(renamed) CODE" until its own event comes, instead of the new name's event failing on the unique
        name (it was retried, then dead-lettered: the new name never reached billing)."""
        await self.session.execute(update(PlanPrice).where(PlanPrice.name == name, PlanPrice.code != keep)
                                   .values(name=literal("(renamed) ") + PlanPrice.code))

    async def forget_prices(self) -> None:
        """Every plan unpriced: its Stripe product and price belong to the keys' old mode."""
        await self.session.execute(update(PlanPrice).values(stripe_price_id=None, stripe_product_id=None, mapped_by=None,
                                                            synced_at=None))
