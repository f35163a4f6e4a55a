"""Kafka entry point (thin): billing's events → suspension, reactivation, plan changes made in Stripe."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from common.events.catalogue import DelinquencyData, PaymentData, SubscriptionData, topic_for_source
from common.messaging import ConsumedEvent
from tenants.billing import service

logger = logging.getLogger("tenants.billing")

BILLING_TOPIC = topic_for_source("billing")
CONSUMER_NAME = "billing-status"


async def on_billing_events(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    """Runs in the consumer's transaction, after its inbox dropped events seen before."""
    for event in events:
        name, data = event.envelope.event, event.envelope.data
        try:
            if name == "billing.subscription.delinquent":
                await service.suspend_for_payment(session, DelinquencyData.model_validate(data).tenantId)
            elif name == "billing.payment_succeeded":
                payment = PaymentData.model_validate(data)
                await service.reactivate_after_payment(session, payment.tenantId, payment.settlesDelinquency)
            elif name == "billing.subscription.updated":
                sub = SubscriptionData.model_validate(data)
                if sub.planChangedInStripe and sub.plan:
                    await service.follow_plan_from_stripe(session, sub.tenantId, sub.plan)
        except ValidationError as exc:
            logger.warning("%s %s has an invalid payload; skipped: %s", name, event.id, exc)
