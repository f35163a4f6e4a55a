"""Sessions: login issues an access token and a new refresh family; refresh rotates; logout revokes."""

from __future__ import annotations

import time
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from auth.config import Settings
from auth.login.schemas import TokenResponse
from auth.login_attempt import service as throttle
from auth.models import User
from auth.refresh_token import service as refresh_tokens
from auth.signing_key.keyring import KeyRing
from auth.transaction import RejectedCredentials
from auth.user.passwords import hash_password, needs_rehash, verify_password
from auth.user.repository import UserRepository
from auth.user.schemas import UserSummary
from common.db import utcnow

# One message for an unknown email, a wrong password and a disabled account: no user enumeration.
INVALID_LOGIN = "Invalid email or password"


def access_token(keyring: KeyRing, settings: Settings, user: User) -> str:
    now = int(time.time())
    claims = {
        "iss": settings.auth_issuer, "aud": settings.auth_audience, "sub": str(user.id), "email": user.email,
        "role": user.platform_role, "typ": "access", "iat": now, "exp": now + settings.access_token_ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    if user.tenant_id is not None:
        claims["tid"] = str(user.tenant_id)
    return keyring.sign(claims)


async def _tokens(session: AsyncSession, keyring: KeyRing, settings: Settings, user: User,
                  family_id: uuid.UUID | None = None) -> TokenResponse:
    refresh = await refresh_tokens.issue(session, user.id, ttl_days=settings.refresh_token_ttl_days,
                                         family_id=family_id)
    return TokenResponse(access_token=access_token(keyring, settings, user), refresh_token=refresh,
                         expires_in=settings.access_token_ttl_seconds, user=UserSummary.model_validate(user))


async def login(session: AsyncSession, keyring: KeyRing, settings: Settings, *, email: str, password: str,
                ip: str) -> TokenResponse:
    await throttle.check(session, settings, email=email, ip=ip)
    user = await UserRepository(session).by_email(email)
    valid = await verify_password(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        await throttle.record_failure(session, email=email, ip=ip)
        raise RejectedCredentials(INVALID_LOGIN)
    await throttle.record_success(session, email=email, ip=ip)
    if needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
    user.last_login_at = utcnow()
    return await _tokens(session, keyring, settings, user)


async def refresh(session: AsyncSession, keyring: KeyRing, settings: Settings, token: str) -> TokenResponse:
    used = await refresh_tokens.use(session, token)
    user = await UserRepository(session).get(used.user_id)
    if user is None or not user.is_active:
        await refresh_tokens.revoke_family(session, used.family_id)
        raise RejectedCredentials(refresh_tokens.INVALID)
    return await _tokens(session, keyring, settings, user, family_id=used.family_id)


async def logout(session: AsyncSession, token: str) -> None:
    await refresh_tokens.revoke_family_of(session, token)
