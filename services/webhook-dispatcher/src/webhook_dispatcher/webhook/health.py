"""An endpoint's health, in one place: its failing clock (started by a failure, stopped by a success), its
disabling (410 Gone, or failing past WEBHOOK_DISABLE_AFTER_SECONDS) and its re-enabling by the owner, with
the `webhook.endpoint.disabled` / `webhook.endpoint.recovered` events those publish (ARCHITECTURE §3).

The worker calls it after each batch of attempts, on the Core connection of that batch's transaction;
the API calls it when the owner resumes a DISABLED endpoint, on the request's session.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from webhook_dispatcher import metrics
from webhook_dispatcher.delivery.repository import DeliveryRepository
from webhook_dispatcher.events import outbox
from webhook_dispatcher.models import EndpointStatus
from webhook_dispatcher.webhook.repository import WebhookEndpointRepository

logger = logging.getLogger("webhook_dispatcher.webhook.health")


@dataclass
class HealthChange:
    failing: list[uuid.UUID] = field(default_factory=list)  # their failing clock runs (started or kept)
    recovered: list[uuid.UUID] = field(default_factory=list)  # a success stopped their clock
    disabled: dict[uuid.UUID, str] = field(default_factory=dict)  # disabled by this call, with the reason
    reenabled: list[uuid.UUID] = field(default_factory=list)  # DISABLED -> ACTIVE by this call


async def update_health(db: AsyncSession | AsyncConnection, *, succeeded: Iterable[uuid.UUID] = (),
                        failed: Iterable[uuid.UUID] = (), gone: Iterable[uuid.UUID] = (),
                        reenable: Mapping[uuid.UUID, str | None] | None = None,
                        disable_after_seconds: float = 0.0) -> HealthChange:
    """Apply what was observed, in the caller's transaction:

    `succeeded` answered 2xx (their failing clock stops); `failed` failed again (the clock starts or runs
    on; past `disable_after_seconds` they are disabled); `gone` answered 410 (disabled now); `reenable`
    the owner turned back on (DISABLED -> ACTIVE, with the owner's reason). A disabled endpoint's pending
    deliveries become FAILED (replayable with recover). Every replica reloads the changed endpoints."""
    endpoints, deliveries = WebhookEndpointRepository(db), DeliveryRepository(db)
    change = HealthChange()
    gone, succeeded = set(gone), set(succeeded)
    still_failing = set(failed) - succeeded - gone
    to_disable: dict[uuid.UUID, tuple[str, str, datetime | None]] = {
        endpoint_id: ("gone", "the endpoint answered 410 Gone", None) for endpoint_id in gone}
    if still_failing:
        threshold = datetime.now(UTC) - timedelta(seconds=disable_after_seconds)
        for row in await endpoints.mark_failing(sorted(still_failing)):
            change.failing.append(row.id)
            if row.failing_since is not None and row.failing_since <= threshold:
                to_disable[row.id] = ("failing", f"every delivery failed since {row.failing_since.isoformat()}",
                                      row.failing_since)
    if succeeded:
        await endpoints.clear_failing(sorted(succeeded))
        change.recovered = sorted(succeeded)
    for endpoint_id, (kind, reason, failing_since) in to_disable.items():
        row = await endpoints.disable(endpoint_id, reason)
        if row is None:
            continue  # not ACTIVE any more (paused, deleted, disabled by another replica)
        change.disabled[endpoint_id] = reason
        metrics.ENDPOINTS_DISABLED.labels(kind).inc()
        logger.warning("endpoint %s disabled: %s", endpoint_id, reason)
        await deliveries.fail_pending(endpoint_id, f"endpoint disabled: {reason}")
        await endpoints.notify_changed(endpoint_id)
        await outbox.publish(db, "webhook.endpoint.disabled", {  # type: ignore[arg-type]
            "endpointId": endpoint_id, "url": row.url, "status": EndpointStatus.DISABLED.value,
            "reason": reason, "failingSince": failing_since or row.failing_since,
        }, key=endpoint_id)
    for endpoint_id, reason in (reenable or {}).items():
        row = await endpoints.reenable(endpoint_id, reason)
        if row is None:
            continue
        change.reenabled.append(endpoint_id)
        await endpoints.notify_changed(endpoint_id)
        await outbox.publish(db, "webhook.endpoint.recovered", {  # type: ignore[arg-type]
            "endpointId": endpoint_id, "url": row.url, "status": EndpointStatus.ACTIVE.value, "reason": reason,
        }, key=endpoint_id)
    return change
