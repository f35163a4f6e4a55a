"""How long ago the secrets a service keeps were set: `secret_oldest_age_seconds{secret}`, for the
SecretRotationOverdue alert (deploy/prometheus/alerts.yml, RUNBOOK "SecretRotationOverdue").

Every secret at rest is a SecretBox (Fernet) token, and a Fernet token carries the time it was made (bytes 1-8,
big-endian unix seconds); re-encrypting under a new SECRETS_ENCRYPTION_KEYS key (`SecretBox.rotate`, i.e.
MultiFernet.rotate) keeps that time. So the age of each stored secret is read from its token, in SQL, with no
column added: a service declares which columns hold secrets and `track_secret_ages` refreshes the gauge.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge
from sqlalchemy import BigInteger, ColumnElement, cast, func, select
from sqlalchemy.dialects.postgresql import BIT

from common.db import Database
from common.supervise import every

if TYPE_CHECKING:
    from common.app import Runtime

SECRET_AGE = Gauge("secret_oldest_age_seconds",
                   "Seconds since the oldest secret of this kind the service keeps was set (read from its token)",
                   ["secret"])
REFRESH_SECONDS = 300.0


def fernet_set_at(token: Any) -> ColumnElement[int]:
    """SQL: the unix time a Fernet token was made. Its first 12 base64url characters are 9 bytes: the version
    byte, then the 8-byte timestamp."""
    head = func.decode(func.translate(func.substr(token, 1, 12), "-_", "+/"), "base64")
    return cast(cast(func.concat("x", func.encode(func.substring(head, 2, 8), "hex")), BIT(64)), BigInteger)


@dataclass(frozen=True)
class KeptSecret:
    """`name` (the gauge's `secret` label), the column holding its tokens, the rows that count; `newest`: only
    the newest one is in use (a signing key), else the oldest row is the one overdue first."""

    name: str
    column: Any
    where: tuple[Any, ...] = ()
    newest: bool = False


async def refresh_secret_ages(database: Database, secrets: Sequence[KeptSecret]) -> None:
    async with database.engine.connect() as conn:
        for secret in secrets:
            pick = func.max if secret.newest else func.min
            set_at = (await conn.execute(select(pick(fernet_set_at(secret.column)))
                                         .where(secret.column.is_not(None), *secret.where))).scalar()
            if set_at is None:  # none kept (yet, or any more): no series rather than a made-up age
                try:
                    SECRET_AGE.remove(secret.name)
                except KeyError:
                    pass
            else:
                SECRET_AGE.labels(secret.name).set(max(0.0, time.time() - set_at))


def track_secret_ages(runtime: Runtime, secrets: Sequence[KeptSecret], interval: float = REFRESH_SECONDS) -> None:
    """Refresh the gauge at start and every `interval` seconds for the app's lifetime (common.app.Runtime)."""
    runtime.supervise("secret-ages", lambda: every(interval, lambda: refresh_secret_ages(runtime.database, secrets),
                                                   first=0))
