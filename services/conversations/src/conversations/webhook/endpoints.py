"""Inbound provider webhooks (public: authenticated by signature or per-channel secret, not by a caller)."""

from __future__ import annotations

import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import PlainTextResponse, Response

from common.db import SessionDep
from common.errors import problem_responses
from conversations.dependencies import SettingsDep
from conversations.providers.evolution import SECRET_HEADER
from conversations.webhook import service
from conversations.webhook.schemas import Received

router = APIRouter(prefix="/api/webhooks", tags=["provider webhooks"])
WHATSAPP = "/whatsapp/{channel_id}"
EVOLUTION = "/evolution/{channel_id}"
PUBLIC_ROUTES = [router.prefix + WHATSAPP, router.prefix + EVOLUTION]


@router.get(WHATSAPP, response_class=PlainTextResponse, responses=problem_responses(400, 403, 404, 422))
async def whatsapp_verification(
    session: SessionDep, settings: SettingsDep, channel_id: uuid.UUID,
    mode: Annotated[str | None, Query(alias="hub.mode", max_length=50)] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token", max_length=500)] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=500)] = None,
) -> PlainTextResponse:
    """Meta's webhook verification: answers `hub.challenge` when `hub.verify_token` matches, else 403."""
    return PlainTextResponse(await service.verify_subscription(session, settings, channel_id, mode, token,
                                                               challenge))


# The two POSTs take the database and settings from the app's state, not as dependencies: FastAPI's solving of
# two `Depends` was ~35-50 us of CPU per webhook (measured on a bare app), at hundreds of webhooks per second.
@router.post(WHATSAPP, response_model=Received, responses=problem_responses(400, 401, 404, 422))
async def whatsapp_webhook(channel_id: uuid.UUID, request: Request,
                           signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None,
                           ) -> Response:
    """Messages and statuses from the Cloud API. Stored (deduplicated on the provider's id) and answered at
    once; processed right after."""
    state = request.app.state
    return _answer(await service.receive_cloud(state.database, state.settings, channel_id, await request.body(),
                                               signature))


@router.post(EVOLUTION, response_model=Received, responses=problem_responses(400, 401, 404, 422))
async def evolution_webhook(channel_id: uuid.UUID, request: Request,
                            secret: Annotated[str | None, Header(alias=SECRET_HEADER)] = None) -> Response:
    """Events of an Evolution instance (the wrapped body: `{event, instance, data}`), authenticated by the
    channel's secret header that the platform set with the webhook."""
    state = request.app.state
    return _answer(await service.receive_evolution(state.database, state.settings, channel_id, await request.body(),
                                                   secret))


def _answer(received: Received) -> Response:
    # Serialised here: FastAPI's validation of the return value against `response_model` (kept for the
    # OpenAPI document) is a noticeable part of an acknowledgement's CPU at hundreds per second.
    return Response(orjson.dumps(received.model_dump(by_alias=True)), media_type="application/json")
