"""`POST /api/webhooks/stripe`: verified on the raw body before anything else, stored once, answered at once."""

from __future__ import annotations

from fastapi import APIRouter, Request

from billing.context import BillingDep
from billing.webhook import service
from billing.webhook.schemas import WebhookAck
from common.errors import problem_responses

router = APIRouter(prefix="/api/webhooks/stripe", tags=["stripe webhook"])
PUBLIC_PATH = "/api/webhooks/stripe"


@router.post("", response_model=WebhookAck, responses=problem_responses(400, 409, 413),
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"type": "object", "description": "A Stripe event, signed (Stripe-Signature)"}}}}})
async def receive(request: Request, billing: BillingDep) -> WebhookAck:
    """Stripe's webhook. `Stripe-Signature` is checked (tolerance 300 s) before the event is stored; a
    repeated event id is acknowledged and changes nothing. Processing happens after the answer."""
    body = await request.body()
    return await service.receive(billing, body, request.headers.get("stripe-signature"))
