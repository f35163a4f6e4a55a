"""What billing's endpoints, consumer and workers share for the app's lifetime (`app.state.billing`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from billing.config import Settings
from billing.stripe_api import StripeApi
from common.crypto import SecretBox
from common.db import Database


@dataclass
class Billing:
    settings: Settings
    database: Database | None = None
    # Set when a Stripe event was stored or a sync job was added: the workers look at once.
    events_waiting: asyncio.Event = field(default_factory=asyncio.Event)
    jobs_waiting: asyncio.Event = field(default_factory=asyncio.Event)
    webhook_secret_cache: tuple[str, str, float] | None = None  # (webhook secret, mode, when read)
    # Stripe webhook INSERTs in flight: fewer than the pool holds, so a burst of deliveries queues here
    # instead of opening (and closing) overflow PostgreSQL connections for each one.
    ack_slots: asyncio.Semaphore = field(init=False)
    _clients: dict[str, StripeApi] = field(default_factory=dict)

    _box: SecretBox | None = None

    def __post_init__(self) -> None:
        self.ack_slots = asyncio.Semaphore(max(1, self.settings.database_pool_size // 2))

    @property
    def box(self) -> SecretBox:
        """Built on first use: an app built only for its OpenAPI document needs no keys."""
        if self._box is None:
            self._box = SecretBox(self.settings.secrets_encryption_keys)
        return self._box

    def stripe(self, secret_key: str) -> StripeApi:
        """One SDK client (and connection pool) per key, reused."""
        client = self._clients.get(secret_key)
        if client is None:
            if len(self._clients) > 8:
                self._clients.clear()
            client = self._clients[secret_key] = StripeApi(
                secret_key, api_base=self.settings.stripe_api_base, timeout=self.settings.stripe_timeout_seconds)
        return client


async def get_billing(request: Request) -> Billing:
    """Async on purpose: FastAPI runs a plain `def` dependency in its thread pool (a thread hand-off per
    request, measured as the biggest cost of the Stripe webhook's acknowledgement after its INSERT)."""
    return request.app.state.billing


BillingDep = Annotated[Billing, Depends(get_billing)]


def wake_after_commit(session: AsyncSession, wake: Callable[[], None]) -> None:
    """Wake a worker once this session's transaction is committed (before that it would find nothing)."""
    sa_event.listen(session.sync_session, "after_commit", lambda _: wake(), once=True)
