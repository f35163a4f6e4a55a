"""Plans are owned here: added and changed through the API, each change published as `plan.created` /
`plan.updated` (billing keeps its copy, with the Stripe price, from these events). A code never changes:
it is the plan's name in URLs, Stripe lookup keys and other services' copies."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.auth.dependencies import Principal
from common.db import utcnow
from common.errors import Conflict, NotFound
from tenants.events import outbox
from tenants.models import Plan
from tenants.plan.cache import plans as plan_cache
from tenants.plan.repository import PlanRepository
from tenants.plan.schemas import PlanCreate, PlanRead, PlanUpdate

# Fields a PATCH may change, as named in events (`changes`, `previous`).
_EDITABLE = {"name": "name", "amount": "amount", "currency": "currency", "interval": "interval", "active": "active",
             "limits": "limits"}


def event_data(plan: Plan) -> dict[str, Any]:
    return {"planId": plan.id, "code": plan.code, "name": plan.name, "amount": plan.amount, "currency": plan.currency,
            "interval": plan.interval, "active": plan.active, "limits": plan.limits}


async def list_plans(session: AsyncSession, principal: Principal, *, active: bool | None) -> list[PlanRead]:
    """Every plan for the owner; tenant users see the active ones (what a tenant may be put on)."""
    if not principal.is_owner:
        if active is False:
            return []
        active = True
    return [PlanRead.model_validate(p) for p in await PlanRepository(session).list(active=active)]


async def _get(session: AsyncSession, code: str, *, for_update: bool = False) -> Plan:
    plan = await PlanRepository(session).by_code(code, for_update=for_update)
    if plan is None:
        raise NotFound(f"Plan {code!r} not found")
    return plan


async def get(session: AsyncSession, principal: Principal, code: str) -> PlanRead:
    plan = await _get(session, code)
    if not plan.active and not principal.is_owner:
        raise NotFound(f"Plan {code!r} not found")
    return PlanRead.model_validate(plan)


async def _refuse_clash(repo: PlanRepository, *keys: str, besides: Plan | None = None) -> None:
    other = await repo.clashing(*keys, besides=besides)
    if other is not None:
        raise Conflict(f"Plan {other.code} ({other.name}) already uses the code or name "
                       f"{' / '.join(sorted(set(keys)))}")


async def _flush(repo: PlanRepository) -> None:
    try:
        await repo.flush()
    except IntegrityError:  # a concurrent request took the code or name since the check
        raise Conflict("Another plan already uses this code or name") from None


async def create(session: AsyncSession, body: PlanCreate) -> PlanRead:
    repo = PlanRepository(session)
    await _refuse_clash(repo, body.code, body.name)
    now = utcnow()
    plan = Plan(id=uuid.uuid4(), code=body.code, name=body.name, amount=body.amount, currency=body.currency,
                interval=body.interval, active=body.active, limits=body.limits,
                sort_order=await repo.next_sort_order(), created_at=now, updated_at=now)
    await repo.add(plan, flush=False)
    await _flush(repo)
    await outbox.publish(session, "plan.created", event_data(plan), key=plan.id)
    plan_cache.clear()
    return PlanRead.model_validate(plan)


async def update(session: AsyncSession, code: str, body: PlanUpdate) -> PlanRead:
    repo = PlanRepository(session)
    plan = await _get(session, code, for_update=True)
    previous: dict[str, Any] = {}
    for attr, value in body.model_dump(exclude_unset=True).items():
        if value is not None and value != getattr(plan, attr):
            previous[_EDITABLE[attr]] = getattr(plan, attr)
            setattr(plan, attr, value)
    if not previous:
        return PlanRead.model_validate(plan)  # nothing changed: no event
    if "name" in previous:
        await _refuse_clash(repo, plan.name, besides=plan)
    plan.updated_at = utcnow()
    await _flush(repo)
    await outbox.publish(session, "plan.updated", event_data(plan) | {"changes": sorted(previous),
                                                                      "previous": previous}, key=plan.id)
    plan_cache.clear()
    return PlanRead.model_validate(plan)
