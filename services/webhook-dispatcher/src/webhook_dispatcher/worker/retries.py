"""What happens after an attempt: done, retry later (schedule + jitter, Retry-After), dead letter, disable."""

from __future__ import annotations

import random
from dataclasses import dataclass

from webhook_dispatcher.models import DeliveryStatus
from webhook_dispatcher.outbound.transport import BACK_OFF_STATUSES, AttemptResult


@dataclass(frozen=True)
class Decision:
    status: DeliveryStatus
    delay: float | None = None  # seconds until the next attempt, when status is PENDING
    disable_endpoint: bool = False  # the endpoint answered 410 Gone


def decide(result: AttemptResult, cycle_attempts: int, schedule: list[float], *, jitter: float = 0.1,
           retry_after_max: float = 21_600.0, rng: random.Random | None = None,
           gone_is_final: bool = True) -> Decision:
    """`cycle_attempts`: attempts made in this cycle including the one just finished.

    Every failure but 410 is retried on the schedule, 404 included: an n8n production webhook answers
    404 "not registered" for a moment after its workflow is activated. `gone_is_final=False` (n8n flows,
    whose state the platform mirrors) retries a 410 too instead of disabling the endpoint.
    """
    if result.success:
        return Decision(DeliveryStatus.SUCCEEDED)
    if gone_is_final and result.status_code == 410 and result.error_class == "http":
        return Decision(DeliveryStatus.FAILED, disable_endpoint=True)
    if cycle_attempts > len(schedule):
        return Decision(DeliveryStatus.FAILED)
    base = schedule[cycle_attempts - 1]
    delay = base * (1.0 + (rng or random).uniform(-jitter, jitter)) if jitter else base
    if result.retry_after is not None and result.status_code in BACK_OFF_STATUSES:
        delay = max(delay, min(result.retry_after, retry_after_max))
    return Decision(DeliveryStatus.PENDING, delay=max(0.0, delay))
