"""Login throttling, shared by all replicas through the database.

Failures are counted in a sliding window per (email, client IP) and per client IP. A success clears
only its own (email, IP) failures: the per-IP count keeps running, so logging into one's own account
does not reset an attack on others. Throttled attempts are not counted (no self-extending lockout),
and the check runs before the password hash, so a throttled attacker costs no Argon2 work.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auth.config import Settings
from auth.login_attempt.repository import LoginAttemptRepository
from common.db import utcnow
from common.errors import TooManyRequests


def _retry_after(nth_latest: datetime | None, window: timedelta, now: datetime) -> int | None:
    if nth_latest is None:
        return None
    return max(1, math.ceil((nth_latest + window - now).total_seconds()))


async def check(session: AsyncSession, settings: Settings, *, email: str, ip: str) -> None:
    """Raises 429 with Retry-After while either limit is reached; else holds the (email, IP) lock."""
    repo = LoginAttemptRepository(session)
    await repo.lock(email, ip)
    now = utcnow()
    window = timedelta(seconds=settings.login_failure_window_seconds)
    waits = [
        _retry_after(await repo.nth_latest_failure(settings.login_max_failures, now - window, ip=ip, email=email),
                     window, now),
        _retry_after(await repo.nth_latest_failure(settings.login_max_failures_per_ip, now - window, ip=ip),
                     window, now),
    ]
    wait = max((w for w in waits if w is not None), default=None)
    if wait is not None:
        raise TooManyRequests("Too many failed login attempts; try again later",
                              headers={"Retry-After": str(wait)})


async def record_failure(session: AsyncSession, *, email: str, ip: str) -> None:
    await LoginAttemptRepository(session).add_failure(email, ip, utcnow())


async def record_success(session: AsyncSession, *, email: str, ip: str) -> None:
    await LoginAttemptRepository(session).clear(email, ip)


async def purge(session: AsyncSession, settings: Settings) -> int:
    before = utcnow() - timedelta(seconds=settings.login_failure_window_seconds)
    return await LoginAttemptRepository(session).delete_older_than(before)
