"""`POST /api/webhooks/stripe`: verified on the raw body before anything else, stored once, answered at once."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from billing.context import Billing
from billing.webhook import service
from billing.webhook.schemas import WebhookAck
from common.errors import problem_responses

router = APIRouter(prefix="/api/webhooks/stripe", tags=["stripe webhook"])
PUBLIC_PATH = "/api/webhooks/stripe"


@router.post("", response_model=WebhookAck, responses=problem_responses(400, 409, 413),
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"type": "object", "description": "A Stripe event, signed (Stripe-Signature)"}}}}})
async def receive(request: Request) -> Response:
    """Stripe's webhook. `Stripe-Signature` is checked (tolerance 300 s) before the event is stored; a
    repeated event id is acknowledged and changes nothing. Processing happens after the answer."""
    # The hot path: no dependencies to solve and the answer serialised here (FastAPI's response-model pass
    # is skipped for a Response); the documented model is still WebhookAck.
    billing: Billing = request.app.state.billing
    ack = await service.receive(billing, await request.body(), request.headers.get("stripe-signature"))
    return Response(ack.model_dump_json(by_alias=True, exclude_none=True), media_type="application/json")
