from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from auth.login import service
from auth.login.client_ip import client_ip
from auth.login.schemas import LoginRequest, RefreshRequest, TokenResponse
from auth.signing_key.keyring import KeyRing, current_keyring
from auth.transaction import SessionDep
from common.errors import problem_responses

router = APIRouter(prefix="/api/auth", tags=["sessions"])

KeyRingDep = Annotated[KeyRing, Depends(current_keyring)]

# Public by nature: they are how a caller gets (or gives up) credentials.
PUBLIC_PATHS = {"/api/auth/login", "/api/auth/refresh", "/api/auth/logout"}


@router.post("/login", response_model=TokenResponse, responses=problem_responses(401, 422, 429))
async def login(session: SessionDep, keyring: KeyRingDep, request: Request, body: LoginRequest) -> TokenResponse:
    """Exchange email and password for an access token and a refresh token.

    Repeated failures from one client are throttled (429 with Retry-After)."""
    return await service.login(session, keyring, request.app.state.settings, email=body.email,
                               password=body.password, ip=client_ip(request))


@router.post("/refresh", response_model=TokenResponse, responses=problem_responses(401, 422))
async def refresh(session: SessionDep, keyring: KeyRingDep, request: Request, body: RefreshRequest) -> TokenResponse:
    """Exchange a refresh token for a new pair. Each refresh token works once: presenting a used one again
    revokes its whole session."""
    return await service.refresh(session, keyring, request.app.state.settings, body.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(422))
async def logout(session: SessionDep, body: RefreshRequest) -> Response:
    """Revoke the session the refresh token belongs to (unknown tokens are ignored)."""
    await service.logout(session, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
