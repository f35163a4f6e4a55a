"""Per-request access to the service's settings and secret box."""

from __future__ import annotations

from functools import cache
from typing import Annotated

from fastapi import Depends, Request

from common.crypto import SecretBox
from conversations.config import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


@cache
def secret_box(keys: str) -> SecretBox:
    return SecretBox(keys)


SettingsDep = Annotated[Settings, Depends(get_settings)]
