"""The whole event catalogue as typed models; `data` of each event type, exported as JSON Schema.

Payloads carry what a subscriber needs to act without calling back (e.g. a ticket's priority),
and allow extra fields so a publisher can add information without breaking consumers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.events.envelope import Envelope


class EventData(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --- tenants -------------------------------------------------------------------------------------
class TenantData(EventData):
    tenantId: uuid.UUID
    name: str
    plan: str
    status: Literal["ACTIVE", "SUSPENDED", "DELETED"]


class TenantUpdatedData(TenantData):
    changes: list[str] = Field(description="Names of the fields that changed")
    previous: dict[str, Any] = Field(default_factory=dict, description="Previous values of changed fields")


class TenantStatusChangedData(TenantData):
    reason: str | None = None


# --- plans (owned by tenants) -------------------------------------------------------------------
class PlanData(EventData):
    planId: uuid.UUID
    code: str = Field(description="The plan's code (immutable), e.g. PRO")
    name: str
    amount: int = Field(description="Price per interval in minor units (cents)")
    currency: str = Field(description="ISO 4217 code, upper case")
    interval: Literal["day", "week", "month", "year"]
    active: bool = Field(description="Inactive plans take no new tenants; tenants already on one keep it")
    limits: dict[str, Any] = Field(default_factory=dict)


class PlanUpdatedData(PlanData):
    changes: list[str] = Field(description="Names of the fields that changed")
    previous: dict[str, Any] = Field(default_factory=dict, description="Previous values of changed fields")


# --- support -------------------------------------------------------------------------------------
Priority = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
TicketStatus = Literal["OPEN", "IN_PROGRESS", "WAITING", "RESOLVED", "CLOSED"]


class TicketData(EventData):
    ticketId: uuid.UUID
    tenantId: uuid.UUID
    subject: str
    priority: Priority
    status: TicketStatus
    assigneeId: uuid.UUID | None = None
    createdBy: uuid.UUID | None = None


class TicketUpdatedData(TicketData):
    changes: list[str]
    previous: dict[str, Any] = Field(default_factory=dict)


class TicketMessageData(EventData):
    ticketId: uuid.UUID
    tenantId: uuid.UUID
    messageId: uuid.UUID
    authorId: uuid.UUID | None = None
    body: str
    internal: bool = False
    priority: Priority
    status: TicketStatus


# --- leads ---------------------------------------------------------------------------------------
class LeadData(EventData):
    leadId: uuid.UUID
    name: str
    email: str | None = None
    company: str | None = None
    source: str | None = None
    stage: str
    value: Decimal | None = None
    currency: str | None = None
    phone: str | None = None
    assigneeId: uuid.UUID | None = None
    conversationId: uuid.UUID | None = Field(default=None, description="Set when the lead came from a conversation")
    ownOperation: bool = False


class LeadUpdatedData(LeadData):
    changes: list[str]
    previous: dict[str, Any] = Field(default_factory=dict)


class LeadStageChangedData(LeadData):
    from_: str = Field(alias="from")
    to: str
    note: str | None = None


class LeadConvertedData(LeadData):
    convertedAt: datetime
    tenantId: uuid.UUID | None = None
    from_: str | None = Field(default=None, alias="from", description="Stage the lead was converted from")


# --- conversations -------------------------------------------------------------------------------
class ConversationData(EventData):
    conversationId: uuid.UUID
    channelId: uuid.UUID
    channelType: Literal["EVOLUTION", "CLOUD_API"] | str
    contact: str = Field(description="The contact's phone number (or WhatsApp id for an @lid sender)")
    contactName: str | None = Field(default=None, description="The contact's WhatsApp profile name")
    agentId: uuid.UUID | None = None
    status: Literal["OPEN", "CLOSED"] | None = None


class ConversationMessageData(ConversationData):
    messageId: uuid.UUID
    externalId: str | None = Field(default=None, description="The provider's message id (wamid..., key.id)")
    text: str | None = None
    direction: Literal["INBOUND", "OUTBOUND"]
    type: str = Field(default="text", description="text, image, audio, video, document, location, ...")
    caption: str | None = None
    sender: Literal["CONTACT", "AGENT", "PERSON"] | None = None
    messageStatus: str | None = Field(default=None, description="RECEIVED, SENT, DELIVERED, READ, FAILED")


class ConversationEndedData(ConversationData):
    reason: Literal["CLOSED", "IDLE"] | str | None = Field(default=None, description="CLOSED (by a person) or IDLE (timeout)")
    closedBy: uuid.UUID | None = None


class ChannelStatusData(EventData):
    channelId: uuid.UUID
    channelType: Literal["EVOLUTION", "CLOUD_API"] | str
    name: str
    status: Literal["CONNECTING", "CONNECTED", "DISCONNECTED", "ERROR"] | str
    previousStatus: str | None = None
    reason: str | None = None


# --- billing -------------------------------------------------------------------------------------
class SubscriptionData(EventData):
    tenantId: uuid.UUID
    subscriptionId: str = Field(description="Stripe subscription id (sub_…)")
    plan: str | None = Field(default=None, description="Plan code the subscription's price bills, when mapped")
    priceId: str | None = Field(default=None, description="Stripe price id (price_…)")
    status: str = Field(description="Stripe status: incomplete, incomplete_expired, trialing, active, past_due, "
                        "canceled, unpaid, paused")
    previousStatus: str | None = None
    previousPlan: str | None = Field(default=None, description="Set when the plan changed")
    currentPeriodEnd: datetime | None = None
    cancelAtPeriodEnd: bool = False
    planChangedInStripe: bool = Field(default=False, description="The price was changed in Stripe (e.g. the "
                                      "customer portal), not by the platform")
    cancellationReason: str | None = Field(default=None, description="Stripe's cancellation_details.reason, "
                                           "e.g. payment_failed")


class PaymentData(EventData):
    tenantId: uuid.UUID
    invoiceId: str = Field(description="Stripe invoice id (in_…)")
    subscriptionId: str | None = None
    status: str | None = Field(default=None, description="Invoice status: open, paid, uncollectible, void")
    amountDue: int = Field(description="Minor units (cents)")
    amountPaid: int = 0
    currency: str | None = None
    attemptCount: int = 0
    nextPaymentAttempt: datetime | None = Field(default=None, description="null when Stripe will not retry")
    finalAttempt: bool = Field(default=False, description="Failed and Stripe gave up (no next attempt)")
    hostedInvoiceUrl: str | None = None
    settlesDelinquency: bool | None = Field(
        default=None, description="billing.payment_succeeded only: true when, after this payment, the tenant's "
        "subscription has no overdue invoice left (a suspension for non-payment may end); false when an invoice "
        "Stripe gave up on, newer than this one, is still unpaid. Absent in events published before the field "
        "existed")


class DelinquencyData(EventData):
    tenantId: uuid.UUID
    subscriptionId: str
    invoiceId: str | None = Field(default=None, description="The invoice Stripe gave up on, when known")
    reason: Literal["payment"] = "payment"
    overdueSince: datetime = Field(description="When Stripe gave up collecting")
    graceHours: float = Field(description="BILLING_SUSPEND_GRACE_HOURS when it ended")


# --- dispatcher ----------------------------------------------------------------------------------
class WebhookVerificationData(EventData):
    challenge: str


class WebhookTestData(EventData):
    endpointId: uuid.UUID
    message: str = "This is a test event from Plataforma"


class WebhookEndpointStatusData(EventData):
    endpointId: uuid.UUID
    url: str
    status: str
    reason: str | None = None
    failingSince: datetime | None = None


# The service that publishes each family of events (the name's first part), as ARCHITECTURE §1's table
# says; its topic is platform.<service>.events.
PUBLISHERS: dict[str, str] = {
    "tenant": "tenants", "plan": "tenants", "ticket": "support", "lead": "leads",
    "conversation": "conversations", "channel": "conversations", "billing": "billing",
    "webhook": "webhook-dispatcher",
}


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    data_model: type[EventData]
    routable: bool = True  # False: sent only to the endpoint concerned (verification, test)

    @property
    def source(self) -> str:
        return PUBLISHERS[self.name.split(".", 1)[0]]

    def json_schema(self) -> dict[str, Any]:
        schema = Envelope.model_json_schema(by_alias=True)
        schema["title"] = self.name
        schema["properties"]["event"] = {"const": self.name, "type": "string"}
        schema["properties"]["data"] = self.data_model.model_json_schema(by_alias=True)
        return schema


# Every event: (name, description, data model). Its publisher follows from the name (PUBLISHERS).
_EVENTS: list[tuple[str, str, type[EventData]]] = [
    ("tenant.created", "A tenant was created", TenantData),
    ("tenant.updated", "A tenant's name, plan or settings changed", TenantUpdatedData),
    ("tenant.suspended", "A tenant was suspended", TenantStatusChangedData),
    ("tenant.reactivated", "A suspended tenant was reactivated", TenantStatusChangedData),
    ("tenant.deleted", "A tenant was deleted (soft)", TenantStatusChangedData),
    ("plan.created", "A plan was added (its price per interval)", PlanData),
    ("plan.updated", "A plan's name, price, interval, limits or active flag changed", PlanUpdatedData),
    ("ticket.created", "A support ticket was opened", TicketData),
    ("ticket.updated", "A ticket's status, priority, assignee or text changed", TicketUpdatedData),
    ("ticket.closed", "A ticket was closed", TicketData),
    ("ticket.message.added", "A message or internal note was added to a ticket", TicketMessageData),
    ("lead.created", "A sales lead was created", LeadData),
    ("lead.updated", "A lead's details changed", LeadUpdatedData),
    ("lead.converted", "A lead was converted into a customer", LeadConvertedData),
    ("lead.stage.changed", "A lead moved to another pipeline stage", LeadStageChangedData),
    ("conversation.started", "A conversation started on a channel", ConversationData),
    ("conversation.message.received", "An inbound message arrived", ConversationMessageData),
    ("conversation.message.sent", "An outbound message was sent", ConversationMessageData),
    ("conversation.ended", "A conversation ended (closed by a person or idle)", ConversationEndedData),
    ("channel.status.changed", "A WhatsApp channel connected, disconnected or failed", ChannelStatusData),
    ("billing.subscription.created", "A tenant's subscription was created", SubscriptionData),
    ("billing.subscription.updated", "A tenant's subscription changed", SubscriptionData),
    ("billing.subscription.canceled", "A tenant's subscription was canceled", SubscriptionData),
    ("billing.subscription.delinquent", "Stripe gave up collecting a tenant's payment and the grace period ended: "
     "the tenant is to be suspended", DelinquencyData),
    ("billing.payment_failed", "A subscription payment failed", PaymentData),
    ("billing.payment_succeeded", "A subscription payment succeeded", PaymentData),
    ("webhook.verification", "Challenge sent to verify a new endpoint", WebhookVerificationData),
    ("webhook.test", "Test event sent on request to one endpoint", WebhookTestData),
    ("webhook.endpoint.disabled", "An endpoint failed continuously past the threshold and was disabled",
     WebhookEndpointStatusData),
    ("webhook.endpoint.recovered", "A disabled endpoint was re-enabled", WebhookEndpointStatusData),
]
# Sent only to the endpoint concerned, never routed to subscribers.
_UNROUTABLE = {"webhook.verification", "webhook.test"}

EVENT_TYPES: dict[str, EventType] = {
    name: EventType(name, description, data_model, routable=name not in _UNROUTABLE)
    for name, description, data_model in _EVENTS
}


def topic_for_source(source: str) -> str:
    return f"platform.{source}.events"


ALL_TOPICS: list[str] = sorted({topic_for_source(e.source) for e in EVENT_TYPES.values()})


def event_type(name: str) -> EventType:
    try:
        return EVENT_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown event type {name!r}") from None


def build_event(name: str, data: EventData | dict[str, Any], *, tenant_id: uuid.UUID | None = None,
                source: str | None = None) -> Envelope:
    """Validate `data` against the catalogue and wrap it in an envelope."""
    et = event_type(name)
    model = data if isinstance(data, et.data_model) else et.data_model.model_validate(
        data.model_dump(by_alias=True) if isinstance(data, BaseModel) else data)
    return Envelope(event=name, source=source or et.source, tenantId=tenant_id,
                    data=model.model_dump(mode="json", by_alias=True))


def matches(pattern: str, name: str) -> bool:
    """`*`, exact names, or prefix wildcards such as `lead.*` (which also covers `lead.stage.changed`)."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return name.startswith(pattern[:-1])
    return pattern == name


def patterns_matching(name: str) -> list[str]:
    """Every pattern that `matches` this exact name: `*`, the name, and each prefix wildcard of it
    (`lead.*`, `lead.stage.*` for `lead.stage.changed`). A wildcard's prefix ends with a dot, so it can
    only cut the name at one of its dots."""
    return ["*", name] + [name[: i + 1] + "*" for i, c in enumerate(name) if c == "."]


def valid_pattern(pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        prefix = pattern[:-1]
        return any(n.startswith(prefix) for n, e in EVENT_TYPES.items() if e.routable)
    return pattern in EVENT_TYPES and EVENT_TYPES[pattern].routable
