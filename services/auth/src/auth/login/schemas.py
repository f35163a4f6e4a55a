from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, StringConstraints

from auth.user.schemas import UserSummary
from common.validation import StorableText as CleanText

# Login input is not validated beyond size: a malformed email is simply a wrong one (401, no hints).
LoginEmail = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=320),
                      CleanText]
LoginPassword = Annotated[str, StringConstraints(min_length=1, max_length=256), CleanText]
OpaqueToken = Annotated[str, StringConstraints(min_length=1, max_length=200), CleanText]


class LoginRequest(BaseModel):
    email: LoginEmail
    password: LoginPassword


class RefreshRequest(BaseModel):
    refreshToken: OpaqueToken


class TokenResponse(BaseModel):
    accessToken: str
    refreshToken: str
    tokenType: Literal["Bearer"] = "Bearer"
    expiresIn: int
    user: UserSummary
