"""What the API's handlers receive besides the session and the caller: the settings, the secret box and the
outbound transport (built once by `app.create_app`). Never the worker: the API only writes rows and
NOTIFYs, and every replica's worker picks the change up."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from common.crypto import SecretBox
from webhook_dispatcher.config import Settings
from webhook_dispatcher.outbound.transport import WebhookTransport


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_secret_box(request: Request) -> SecretBox:
    return request.app.state.secret_box


def get_transport(request: Request) -> WebhookTransport:
    return request.app.state.transport


SettingsDep = Annotated[Settings, Depends(get_settings)]
SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]
TransportDep = Annotated[WebhookTransport, Depends(get_transport)]
