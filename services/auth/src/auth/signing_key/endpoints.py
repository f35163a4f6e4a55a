from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from auth.signing_key.keyring import KeyRing, current_keyring
from auth.signing_key.schemas import JWKS

router = APIRouter(prefix="/api/auth", tags=["keys"])

PUBLIC_PATHS = {"/api/auth/.well-known/jwks.json"}


@router.get("/.well-known/jwks.json", response_model=JWKS)
async def jwks(keyring: Annotated[KeyRing, Depends(current_keyring)], response: Response) -> JWKS:
    """Public keys that verify access tokens (public: every service fetches it)."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return JWKS.model_validate(keyring.jwks)
