from typing import Literal

from pydantic import Field

from common.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "billing"
    # Where the Stripe SDK sends API calls (the fake Stripe in tests).
    stripe_api_base: str = "https://api.stripe.com"
    stripe_timeout_seconds: float = Field(default=20.0, gt=0)
    # proration_behavior of a plan change (Stripe's names).
    billing_proration_behavior: Literal["create_prorations", "always_invoice", "none"] = "create_prorations"
    # The platform's public base URL (the dispatcher's PLATFORM_PUBLIC_URL too): GET /integrations/stripe
    # shows `{it}/api/webhooks/stripe`, the URL to paste into Stripe's webhook settings.
    platform_public_url: str | None = None
    # Stripe webhook events are applied by a worker: how many per transaction, and how often it looks when
    # nothing woke it.
    billing_event_batch: int = Field(default=200, ge=1, le=5000)
    billing_poll_interval_seconds: float = Field(default=1.0, gt=0)
    # Tenant-caused Stripe work (customer, subscription, plan change, cancel): backoff between attempts
    # while Stripe fails, from the first wait up to the longest.
    billing_retry_initial_seconds: float = Field(default=2.0, gt=0)
    billing_retry_max_seconds: float = Field(default=300.0, gt=0)
    # After Stripe gives up collecting, how long before `billing.subscription.delinquent` tells tenants to
    # suspend the tenant (0 = at once); and how often the grace periods are checked.
    billing_suspend_grace_hours: float = Field(default=72.0, ge=0)
    billing_grace_check_seconds: float = Field(default=60.0, gt=0)
    # Processed Stripe events (and finished Stripe jobs) are deleted after this many days; the dedupe window
    # for Stripe's redeliveries (it retries for up to 3 days) is shorter.
    billing_event_retention_days: float = Field(default=30.0, ge=4)
    billing_sync_concurrency: int = Field(default=8, ge=1, le=100)
