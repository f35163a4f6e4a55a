from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from common.api import Page, PageParamsDep
from common.auth import PlatformOwner
from common.db import SessionDep
from common.db.session import DatabaseDep
from common.errors import problem_responses
from conversations.channel import schemas, service
from conversations.dependencies import SettingsDep
from conversations.webhook import service as webhooks

router = APIRouter(prefix="/api/platform/operations/channels", tags=["own operations: channels"])
NO_STORE = {"Cache-Control": "no-store"}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=schemas.ChannelCreated,
             responses=problem_responses(401, 403, 409, 422, 502, 503))
async def create_channel(session: SessionDep, database: DatabaseDep, settings: SettingsDep, _: PlatformOwner,
                         body: schemas.ChannelCreate, response: Response) -> schemas.ChannelCreated:
    """A WhatsApp number. EVOLUTION: creates the instance on the Evolution server and points its webhook
    here (starts CONNECTING; scan the QR). CLOUD_API: answers the webhook URL and the verify token to paste
    into Meta (the verify token in full only here). Credentials are stored encrypted, shown masked. An
    Evolution instance made by an earlier create of this name that failed is deleted by it, or else adopted here."""
    response.headers.update(NO_STORE)
    return await service.create(session, database, settings, body)


@router.get("", response_model=Page[schemas.ChannelRead], responses=problem_responses(401, 403, 422))
async def list_channels(session: SessionDep, settings: SettingsDep, _: PlatformOwner, page: PageParamsDep,
                        type: schemas.ChannelType | None = None, status: schemas.ChannelStatus | None = None) -> Page[schemas.ChannelRead]:
    return await service.list_channels(session, settings, type=type, status=status, page=page)


@router.get("/{channel_id}", response_model=schemas.ChannelRead, responses=problem_responses(401, 403, 404, 422))
async def get_channel(session: SessionDep, settings: SettingsDep, _: PlatformOwner,
                      channel_id: uuid.UUID) -> schemas.ChannelRead:
    return service.read(settings, await service.require(session, channel_id))


@router.patch("/{channel_id}", response_model=schemas.ChannelRead, responses=problem_responses(401, 403, 404, 422))
async def update_channel(session: SessionDep, settings: SettingsDep, _: PlatformOwner, channel_id: uuid.UUID,
                         body: schemas.ChannelUpdate) -> schemas.ChannelRead:
    """Rename, or replace credentials (a channel in ERROR is then tried again)."""
    updated = await service.update(session, settings, channel_id, body)
    webhooks.forget(channel_id)
    return updated


@router.delete("/{channel_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=problem_responses(401, 403, 404, 422))
async def delete_channel(session: SessionDep, settings: SettingsDep, _: PlatformOwner,
                         channel_id: uuid.UUID) -> Response:
    """Soft delete: history stays readable; the Evolution instance is deleted (best effort)."""
    await service.delete(session, settings, channel_id)
    webhooks.forget(channel_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{channel_id}/test", response_model=schemas.TestResult, responses=problem_responses(401, 403, 404, 422))
async def test_channel(session: SessionDep, settings: SettingsDep, _: PlatformOwner,
                       channel_id: uuid.UUID) -> schemas.TestResult:
    """Check the credentials against the provider (refused credentials put the channel in ERROR)."""
    return await service.test(session, settings, channel_id)


@router.get("/{channel_id}/status", response_model=schemas.StatusRead, responses=problem_responses(401, 403, 404, 422))
async def channel_status(session: SessionDep, settings: SettingsDep, _: PlatformOwner,
                         channel_id: uuid.UUID) -> schemas.StatusRead:
    return await service.status(session, settings, channel_id)


@router.get("/{channel_id}/qr", response_model=schemas.QrRead,
            responses=problem_responses(401, 403, 404, 409, 422, 502, 503))
async def channel_qr(session: SessionDep, settings: SettingsDep, _: PlatformOwner, channel_id: uuid.UUID,
                     response: Response) -> schemas.QrRead:
    """The QR code to scan with WhatsApp (fresh from the Evolution server while not connected), as a data
    URL; 409 once connected."""
    response.headers.update(NO_STORE)
    return await service.qr(session, settings, channel_id)


@router.get("/{channel_id}/qr.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}} | problem_responses(401, 403, 404, 409, 422, 502, 503))
async def channel_qr_png(session: SessionDep, settings: SettingsDep, _: PlatformOwner,
                         channel_id: uuid.UUID) -> Response:
    """The same QR code as an `image/png`."""
    png = service.qr_png(await service.qr(session, settings, channel_id))
    return Response(png, media_type="image/png", headers=NO_STORE)
