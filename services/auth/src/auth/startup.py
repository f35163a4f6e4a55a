"""What the auth service does when it starts, and keeps doing while it runs.

Start: make sure one signing key exists, seed the platform owner, load the keys into memory and into
`app.state.jwks` (so this service verifies its own tokens without fetching its own JWKS over HTTP), and
check `plk_` API keys against the database rather than through its own introspection endpoint.
Then, periodically: reload the keys (a key made by another replica) and purge stale rows.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI

from auth.api_key.introspector import LocalApiKeyIntrospector
from auth.api_key.throttle import IntrospectionThrottle
from auth.config import Settings
from auth.login_attempt import service as login_attempts
from auth.models import SigningKey
from auth.refresh_token import service as refresh_tokens
from auth.signing_key import service as signing_keys
from auth.user import service as users
from common.app import Runtime
from common.crypto import SecretBox
from common.observability.secret_age import KeptSecret, track_secret_ages
from common.supervise import every

logger = logging.getLogger("auth.startup")

PURGE_INTERVAL_SECONDS = 600.0


async def on_startup(app: FastAPI, runtime: Runtime) -> None:
    settings: Settings = runtime.settings  # type: ignore[assignment]
    box = SecretBox(settings.secrets_encryption_keys)
    sessionmaker = runtime.database.sessionmaker
    async with sessionmaker() as session, session.begin():
        if await signing_keys.ensure_active_key(session, box):
            logger.info("created a new signing key")
    async with sessionmaker() as session, session.begin():
        password = settings.platform_owner_password
        await users.seed_owner(session, settings.platform_owner_email,
                               password.get_secret_value() if password else None)
    # Never fetch our own JWKS over HTTP: keys come from the database only.
    app.state.jwks.ttl = app.state.jwks.min_refetch = math.inf
    # Likewise API keys: checked against the database, not through our own introspection endpoint.
    app.state.api_keys = LocalApiKeyIntrospector(runtime.database, settings)
    app.state.introspection_throttle = IntrospectionThrottle(settings.api_key_introspect_failures_per_minute)
    await _load_keys(app, runtime, box)
    runtime.supervise("auth-maintenance", _maintenance(app, runtime, box))
    # The key that signs is the newest unretired one: its age is the one to rotate by (SecretRotationOverdue).
    track_secret_ages(runtime, [KeptSecret("jwt_signing_key", SigningKey.private_key_encrypted,
                                           (SigningKey.retired_at.is_(None),), newest=True)])


async def _load_keys(app: FastAPI, runtime: Runtime, box: SecretBox) -> None:
    settings: Settings = runtime.settings  # type: ignore[assignment]
    async with runtime.database.sessionmaker() as session:
        keyring = await signing_keys.load_keyring(session, box,
                                                  access_token_ttl_seconds=settings.access_token_ttl_seconds)
    app.state.keyring = keyring
    app.state.jwks.set_jwks(keyring.jwks)


async def _purge(runtime: Runtime) -> None:
    settings: Settings = runtime.settings  # type: ignore[assignment]
    async with runtime.database.sessionmaker() as session, session.begin():
        attempts = await login_attempts.purge(session, settings)
        tokens = await refresh_tokens.purge_expired(session)
    if attempts or tokens:
        logger.info("purged %d old login attempts and %d expired refresh tokens", attempts, tokens)


def _maintenance(app: FastAPI, runtime: Runtime, box: SecretBox) -> Callable[[], Awaitable[None]]:
    """Every `signing_keys_reload_seconds`: reload the keys; at most every PURGE_INTERVAL_SECONDS: purge.
    Runs under `supervise`, which logs a failed step and starts the loop again."""
    settings: Settings = runtime.settings  # type: ignore[assignment]
    last_purge = -math.inf

    async def step() -> None:
        nonlocal last_purge
        await _load_keys(app, runtime, box)
        if time.monotonic() - last_purge >= PURGE_INTERVAL_SECONDS:
            await _purge(runtime)
            last_purge = time.monotonic()

    return lambda: every(settings.signing_keys_reload_seconds, step)
