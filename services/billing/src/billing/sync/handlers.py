"""Kafka entry point (thin) for the tenants topic: `tenant.created|updated|deleted` → a Stripe job per event,
in the inbox's transaction (the Stripe calls happen in the job worker, so a slow or down Stripe never holds
the consumer); `plan.created|updated` → billing's copy of the plan."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.context import Billing
from billing.plan import service as plans
from billing.sync import service
from common.events.catalogue import PlanData, TenantData, TenantUpdatedData, topic_for_source
from common.messaging import ConsumedEvent

logger = logging.getLogger("billing.handlers")

TENANTS_TOPIC = topic_for_source("tenants")
CONSUMER_NAME = "tenant-billing"


def tenant_events_handler(billing: Billing
                          ) -> Callable[[AsyncSession, list[ConsumedEvent]], Awaitable[Callable[[], Awaitable[None]] | None]]:
    async def on_tenant_events(session: AsyncSession, events: list[ConsumedEvent]
                               ) -> Callable[[], Awaitable[None]] | None:
        added = 0
        for event in events:
            name = event.envelope.event
            try:
                if name == "tenant.created":
                    data = TenantData.model_validate(event.envelope.data)
                    added += await service.enqueue(session, event.id, data.tenantId, "create", plan=data.plan,
                                                   name=data.name)
                elif name == "tenant.updated":
                    updated = TenantUpdatedData.model_validate(event.envelope.data)
                    if "plan" in updated.changes:
                        added += await service.enqueue(session, event.id, updated.tenantId, "change_plan",
                                                       plan=updated.plan, name=updated.name)
                elif name == "tenant.deleted":
                    data = TenantData.model_validate(event.envelope.data)
                    added += await service.enqueue(session, event.id, data.tenantId, "cancel")
                elif name in ("plan.created", "plan.updated"):
                    await plans.apply_plan_event(session, billing, PlanData.model_validate(event.envelope.data),
                                                 event.envelope.timestamp)
            except ValidationError as exc:
                logger.warning("%s %s has an invalid payload; skipped: %s", name, event.id, exc)
        if not added:
            return None

        async def after() -> None:
            billing.jobs_waiting.set()

        return after

    return on_tenant_events
