from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response

from billing.context import BillingDep
from billing.stripe_settings import service
from billing.stripe_settings.schemas import (
    StripeSettingsRead,
    StripeSettingsUpdate,
    StripeTestRequest,
    StripeTestResult,
)
from common.auth import PlatformOwner
from common.db import SessionDep
from common.errors import problem_responses

router = APIRouter(prefix="/api/platform/integrations/stripe", tags=["stripe"])


@router.get("", response_model=StripeSettingsRead, responses=problem_responses(401, 403))
async def get_settings(session: SessionDep, billing: BillingDep, _: PlatformOwner,
                       response: Response) -> StripeSettingsRead:
    """The Stripe account (keys masked, mode, last change) and the webhook URL to paste into Stripe."""
    response.headers["Cache-Control"] = "no-store"
    return await service.get(session, billing)


@router.put("", response_model=StripeSettingsRead, responses=problem_responses(401, 403, 422))
async def put_settings(session: SessionDep, billing: BillingDep, principal: PlatformOwner,
                       body: StripeSettingsUpdate, response: Response) -> StripeSettingsRead:
    """Save the keys (encrypted at rest; test and live keys never mixed)."""
    response.headers["Cache-Control"] = "no-store"
    return await service.put(session, billing, principal, body)


@router.post("/test", response_model=StripeTestResult, responses=problem_responses(401, 403, 409, 422))
async def test_settings(session: SessionDep, billing: BillingDep, _: PlatformOwner,
                        body: Annotated[StripeTestRequest | None, Body()] = None) -> StripeTestResult:
    """One real Stripe API call with the stored key (or the one given): ok, wrong key or unreachable."""
    return await service.test(session, billing, body)
