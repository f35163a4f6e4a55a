from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, StringConstraints

from auth.user.schemas import UserSummary
from common.api import InputSchema, Schema
from common.validation import StorableText

# Login input is not validated beyond size: a malformed email is simply a wrong one (401, no hints).
LoginEmail = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=320),
                      StorableText]
LoginPassword = Annotated[str, StringConstraints(min_length=1, max_length=256), StorableText]
OpaqueToken = Annotated[str, StringConstraints(min_length=1, max_length=200), StorableText]


class CredentialsInput(InputSchema):
    # Credential exchanges have always ignored fields they do not know (a client's extra hints are harmless
    # here, and a 422 would tell a caller more than a 401 does).
    model_config = ConfigDict(extra="ignore")


class LoginRequest(CredentialsInput):
    email: LoginEmail
    password: LoginPassword


class RefreshRequest(CredentialsInput):
    refresh_token: OpaqueToken


class TokenResponse(Schema):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    user: UserSummary
