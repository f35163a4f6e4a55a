"""Per-request access to the service's settings and secret box."""

from __future__ import annotations

from functools import cache
from typing import Annotated

from fastapi import Depends, Request

from common.crypto import SecretBox
from conversations.config import Settings


async def get_settings(request: Request) -> Settings:
    # async: FastAPI runs a plain `def` dependency in its thread pool (a thread hand-off on every webhook).
    return request.app.state.settings  # type: ignore[no-any-return]


@cache
def secret_box(keys: str) -> SecretBox:
    return SecretBox(keys)


SettingsDep = Annotated[Settings, Depends(get_settings)]
