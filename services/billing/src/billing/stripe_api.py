"""Billing's calls to Stripe: the SDK's async client, pointed at `STRIPE_API_BASE`, every call retried with the
common tenacity policy on network errors, 429 and 5xx (Stripe's Retry-After honoured), never by the SDK itself.

Errors Stripe will repeat whatever we do (bad key, invalid request) raise `StripeRejected`; what may pass
later raises `RetryableCall` once the retries are spent.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import stripe
from prometheus_client import Counter, Histogram

from common.retrying import RETRYABLE_STATUSES, RetryableCall, outbound_retrying, retry_after_seconds

T = TypeVar("T")

# Every HTTP call to Stripe (each retry counts): outcome ok, retryable (network, 429, 5xx) or rejected.
STRIPE_REQUESTS = Counter("billing_stripe_requests_total", "Calls to Stripe's API", ["outcome"])
STRIPE_LATENCY = Histogram("billing_stripe_request_duration_seconds", "Duration of one call to Stripe's API",
                           buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20))


class StripeRejected(Exception):
    """Stripe refused the call (4xx other than 429): retrying the same call cannot help."""

    def __init__(self, message: str, *, status: int | None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _translate(exc: stripe.StripeError) -> Exception:
    status = exc.http_status
    if isinstance(exc, stripe.APIConnectionError) or status is None or status in RETRYABLE_STATUSES:
        retry_after = retry_after_seconds((exc.headers or {}).get("retry-after"))
        return RetryableCall(f"Stripe: {exc.user_message or exc}", retry_after=retry_after, status=status)
    return StripeRejected(f"Stripe: {exc.user_message or exc}", status=status, code=exc.code)


def idempotency_key(cause: uuid.UUID | str, step: str) -> str:
    """One key per (causing event, step): a replay of the event repeats the same Stripe request, which
    Stripe answers with its first answer instead of doing it twice."""
    return f"plataforma-{cause}-{step}"


class StripeApi:
    def __init__(self, secret_key: str, *, api_base: str, timeout: float, attempts: int = 3,
                 max_seconds: float = 20.0) -> None:
        self.client = stripe.StripeClient(
            secret_key, base_addresses={"api": api_base.rstrip("/")}, max_network_retries=0,
            http_client=stripe.HTTPXClient(timeout=timeout))
        self.attempts = attempts
        self.max_seconds = max_seconds

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        async for attempt in outbound_retrying(attempts=self.attempts, max_seconds=self.max_seconds):
            with attempt:
                started = time.perf_counter()
                try:
                    result = await call()
                except stripe.StripeError as exc:
                    error = _translate(exc)
                    STRIPE_REQUESTS.labels("retryable" if isinstance(error, RetryableCall) else "rejected").inc()
                    raise error from exc
                finally:
                    STRIPE_LATENCY.observe(time.perf_counter() - started)
                STRIPE_REQUESTS.labels("ok").inc()
                return result
        raise AssertionError("unreachable")  # reraise=True: the last error propagates

    # --- account -------------------------------------------------------------------------------------
    async def ping(self) -> None:
        """One cheap authenticated call: raises StripeRejected (401: wrong key) or RetryableCall."""
        await self._call(lambda: self.client.v1.customers.list_async({"limit": 1}))

    # --- plans ---------------------------------------------------------------------------------------
    async def price_by_lookup_key(self, lookup_key: str) -> dict[str, Any] | None:
        page = await self._call(lambda: self.client.v1.prices.list_async(
            {"lookup_keys": [lookup_key], "limit": 1}))
        return page.data[0].to_dict() if page.data else None

    async def retrieve_price(self, price_id: str) -> dict[str, Any]:
        return (await self._call(lambda: self.client.v1.prices.retrieve_async(price_id))).to_dict()

    async def create_product(self, *, name: str, code: str, key: str) -> dict[str, Any]:
        return (await self._call(lambda: self.client.v1.products.create_async(
            {"name": name, "metadata": {"planCode": code}}, {"idempotency_key": key}))).to_dict()

    async def create_price(self, *, product: str, amount: int, currency: str, interval: str, lookup_key: str,
                           code: str, key: str) -> dict[str, Any]:
        return (await self._call(lambda: self.client.v1.prices.create_async(
            {"product": product, "unit_amount": amount, "currency": currency.lower(),
             "recurring": {"interval": interval}, "lookup_key": lookup_key, "metadata": {"planCode": code}},
            {"idempotency_key": key}))).to_dict()

    # --- tenants' subscriptions ----------------------------------------------------------------------
    async def create_customer(self, *, tenant_id: uuid.UUID, name: str | None, key: str) -> dict[str, Any]:
        params: dict[str, Any] = {"metadata": {"tenantId": str(tenant_id)}}
        if name:
            params["name"] = name
        return (await self._call(lambda: self.client.v1.customers.create_async(
            params, {"idempotency_key": key}))).to_dict()

    async def find_customer(self, *, tenant_id: uuid.UUID, created_since: int) -> dict[str, Any] | None:
        """The tenant's customer (`metadata.tenantId`) among those created since `created_since` (unix time):
        what an earlier try created when its answer was lost. Stripe's subset here offers no metadata search,
        so the recent customers are paged through (newest first)."""
        params: dict[str, Any] = {"created": {"gte": created_since}, "limit": 100}
        while True:
            page = await self._call(lambda: self.client.v1.customers.list_async(dict(params)))
            for customer in page.data:
                found = customer.to_dict()
                if (found.get("metadata") or {}).get("tenantId") == str(tenant_id):
                    return found
            if not page.has_more or not page.data:
                return None
            params["starting_after"] = page.data[-1].id

    async def find_subscription(self, *, customer: str, tenant_id: uuid.UUID) -> dict[str, Any] | None:
        """The customer's live subscription made for the tenant (`metadata.tenantId`), if any (the list leaves
        canceled ones out; an expired incomplete one is no subscription either)."""
        page = await self._call(lambda: self.client.v1.subscriptions.list_async({"customer": customer, "limit": 100}))
        for subscription in page.data:
            found = subscription.to_dict()
            if (found.get("metadata") or {}).get("tenantId") == str(tenant_id) \
                    and found.get("status") not in ("canceled", "incomplete_expired"):
                return found
        return None

    async def create_subscription(self, *, customer: str, price: str, tenant_id: uuid.UUID,
                                  key: str) -> dict[str, Any]:
        return (await self._call(lambda: self.client.v1.subscriptions.create_async(
            {"customer": customer, "items": [{"price": price}], "metadata": {"tenantId": str(tenant_id)}},
            {"idempotency_key": key}))).to_dict()

    async def change_price(self, *, subscription: str, item: str, price: str, proration: str,
                           key: str) -> dict[str, Any]:
        return (await self._call(lambda: self.client.v1.subscriptions.update_async(
            subscription, {"items": [{"id": item, "price": price}], "proration_behavior": proration},
            {"idempotency_key": key}))).to_dict()

    async def cancel_subscription(self, *, subscription: str, key: str) -> dict[str, Any]:
        return (await self._call(lambda: self.client.v1.subscriptions.cancel_async(
            subscription, None, {"idempotency_key": key}))).to_dict()
