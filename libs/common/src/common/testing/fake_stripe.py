"""A fake Stripe for tests: an aiohttp server on 127.0.0.1 that answers the part of Stripe's API billing uses,
CHECKS every request against Stripe's own OpenAPI (shared/specs/stripe: route, method, parameter names,
required parameters, enums) and records what Stripe would reject in `violations` (a test fails on any),
and builds its objects from Stripe's current example objects (`current/fixtures-subset.json`).

    async with fake_stripe() as stripe:                # http://127.0.0.1:<port>, keys in stripe.secret_key ...
        stripe.url, stripe.secret_key, stripe.publishable_key, stripe.webhook_secret
        stripe.deliver_to(url)                         # send each new event, signed, as it happens
        stripe.fail_next(2, status=429, retry_after=1) # the next 2 API calls answer 429 (or 500)
        stripe.down = True                             # connections are dropped (Stripe unreachable)
        stripe.delay = 2.0                             # API answers come 2 s late
        stripe.fail_payment(sub_id, final=False)       # an invoice payment fails (invoice.payment_failed)
        stripe.pay(sub_id)                             # ... and later succeeds (invoice.payment_succeeded)
        stripe.change_price_in_portal(sub_id, price)   # the customer changes plan in Stripe's portal
        stripe.lose_answers(3, path="/v1/customers", tenant=t, forget_keys_after=True)  # done, answer lost,
                                                       # then every Idempotency-Key forgotten ("24 h later")
        await stripe.send(events, duplicates=True, shuffle=True, to=url)
        stripe.created["customer"], stripe.calls, stripe.events, stripe.violations

Behaviour kept from Stripe: `Authorization: Bearer sk_…` (401 otherwise), errors `{"error": {"type",
"message", "param"?}}`, form-encoded bodies (`items[0][price]`), an `Idempotency-Key` replays the first
answer (`Idempotent-Replayed: true`) and refuses other parameters under the same key (400
idempotency_error), events signed `Stripe-Signature: t=…,v1=HMAC-SHA256(secret, "{t}.{body}")`, today's
shapes (period on subscription items, invoice's subscription under `parent.subscription_details`), lists
newest first with `limit`, `starting_after` and `has_more`, filtered as the spec offers (customers by `created`
range and `email`; subscriptions by `customer`, `price`, `created` and `status`, canceled ones left out unless
asked for).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

from common.testing.servers import FakeServer

SPEC_ENV = "STRIPE_SPEC_DIR"
API_VERSION = "2026-06-24.dahlia"


def default_spec_dir() -> Path:
    """`$STRIPE_SPEC_DIR`, else shared/specs/stripe beside the repository."""
    if os.environ.get(SPEC_ENV):
        return Path(os.environ[SPEC_ENV])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "specs" / "stripe"
        if (candidate / "openapi-2023-08-16-subset.json").is_file():
            return candidate
    raise FileNotFoundError(f"Stripe's spec directory not found: set {SPEC_ENV}")


@cache
def _spec(directory: str) -> tuple[dict[str, Any], dict[str, Any]]:
    base = Path(directory)
    openapi = json.loads((base / "openapi-2023-08-16-subset.json").read_text())
    fixtures = json.loads((base / "current" / "fixtures-subset.json").read_text())["resources"]
    return openapi, fixtures


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    template: str
    operation: dict[str, Any]


def _routes(openapi: dict[str, Any]) -> list[_Route]:
    routes = []
    for template, ops in openapi["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", r"([^/]+)", template) + "$")
        for method, op in ops.items():
            routes.append(_Route(method.upper(), pattern, template, op))
    return routes


def _nest(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`items[0][price]=x` → {"items": [{"price": "x"}]} (Stripe's form encoding)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+|\[\]", key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _lists(root)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


@dataclass
class _Loss:
    method: str
    path: str
    tenant: str | None
    count: int
    forget_keys_after: bool


def stripe_signature(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class FakeStripe(FakeServer):
    def __init__(self, spec_dir: Path | None = None, *, live: bool = False) -> None:
        self.openapi, self.fixtures = _spec(str(spec_dir or default_spec_dir()))
        self.routes = _routes(self.openapi)
        mode = "live" if live else "test"
        self.secret_key = f"sk_{mode}_{secrets.token_hex(12)}"
        self.publishable_key = f"pk_{mode}_{secrets.token_hex(12)}"
        self.webhook_secret = f"whsec_{secrets.token_hex(16)}"
        self.down = False
        self.delay = 0.0
        self._failures: list[tuple[int, float | None]] = []
        self.calls: list[tuple[str, str, dict[str, Any]]] = []  # (method, path, params) answered 2xx, not replays
        self.created: Counter[str] = Counter()
        self.violations: list[str] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.products: dict[str, dict[str, Any]] = {}
        self.prices: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._idempotency: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self._losses: list[_Loss] = []
        self.lost_answers: list[tuple[str, str]] = []  # (method, path) of each answer dropped by lose_answers
        self._clock = 0
        self._deliver_url: str | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self.delivery_statuses: list[int] = []
        self._session: aiohttp.ClientSession | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------
    client_max_size = 1024**2

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    async def start(self) -> None:
        await super().start()
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        await super().stop()

    def fail_next(self, count: int, *, status: int = 500, retry_after: float | None = None) -> None:
        self._failures.extend([(status, retry_after)] * count)

    def lose_answers(self, count: int, *, path: str, method: str = "POST", tenant: Any = None,
                     forget_keys_after: bool = False) -> None:
        """The next `count` requests to `method path` (whose `metadata[tenantId]` is `tenant`, when given) are
        carried out, or replayed under their Idempotency-Key, but their answers never arrive (the connection
        drops). `forget_keys_after`: after the last one Stripe forgets every Idempotency-Key, as it does
        after 24 h, so a later retry of the same request would do it again."""
        self._losses.append(_Loss(method, path, None if tenant is None else str(tenant), count, forget_keys_after))

    def forget_idempotency_keys(self) -> None:
        self._idempotency.clear()

    def _lose(self, request: web.Request, params: dict[str, Any]) -> bool:
        """Drop this answer when a `lose_answers` rule takes it."""
        tenant = (params.get("metadata") or {}).get("tenantId")
        loss = next((x for x in self._losses if x.method == request.method and x.path == request.path
                     and x.tenant in (None, tenant)), None)
        if loss is None:
            return False
        loss.count -= 1
        if loss.count <= 0:
            self._losses.remove(loss)
            if loss.forget_keys_after:
                self.forget_idempotency_keys()
        self.lost_answers.append((request.method, request.path))
        assert request.transport is not None
        request.transport.abort()
        return True

    # --- the API -----------------------------------------------------------------------------------------
    def _error(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
               headers: dict[str, str] | None = None) -> web.Response:
        error: dict[str, Any] = {"type": type, "message": message}
        if param:
            error["param"] = param
        return web.json_response({"error": error}, status=status, headers=headers)

    def _violation(self, message: str) -> None:
        self.violations.append(message)

    def _check(self, route: _Route, params: dict[str, Any], form_names: list[str]) -> str | None:
        """What Stripe would reject: an unknown parameter, a missing required one, a value outside an enum."""
        op = route.operation
        if route.method == "GET":
            allowed = {p["name"]: p.get("schema", {}) for p in op.get("parameters", []) if p.get("in") == "query"}
            required: list[str] = []
        else:
            schema = (op.get("requestBody") or {}).get("content", {}).get(
                "application/x-www-form-urlencoded", {}).get("schema", {})
            allowed = schema.get("properties", {})
            required = schema.get("required", [])
        for name in form_names:
            if name not in allowed:
                return f"Received unknown parameter: {name}"
        for name in required:
            if name not in params:
                return f"Missing required param: {name}."
        for name, value in params.items():
            enum = allowed.get(name, {}).get("enum")
            if enum and isinstance(value, str) and value not in enum:
                return f"Invalid {name}: must be one of {', '.join(map(str, enum))}"
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            assert request.transport is not None
            request.transport.abort()  # unreachable: the client sees the connection drop
            raise web.HTTPServiceUnavailable()
        if self.delay:
            await asyncio.sleep(self.delay)
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.secret_key}":
            return self._error(401, "Invalid API Key provided: " + auth.removeprefix("Bearer ")[:8] + "****")
        route = next((r for r in self.routes if r.method == request.method and r.pattern.match(request.path)), None)
        if route is None:
            self._violation(f"{request.method} {request.path}: no such route in Stripe's API")
            return self._error(404, f"Unrecognized request URL ({request.method}: {request.path}).")
        if self._failures:
            status, retry_after = self._failures.pop(0)
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            kind = "rate_limit_error" if status == 429 else "api_error"
            return self._error(status, "Too many requests" if status == 429 else "Something went wrong", type=kind,
                               headers=headers)
        raw = await request.text() if request.method != "GET" else request.query_string
        pairs = parse_qsl(raw, keep_blank_values=True)
        params = _nest(pairs)
        names = sorted({re.split(r"\[", k, maxsplit=1)[0] for k, _ in pairs})
        problem = self._check(route, params, names)
        if problem is not None:
            self._violation(f"{request.method} {route.template}: {problem}")
            return self._error(400, problem, param=problem.rsplit(" ", 1)[-1].rstrip("."))
        key = request.headers.get("Idempotency-Key")
        fingerprint = f"{request.method} {request.path} {sorted(pairs)}"
        if key and request.method == "POST":
            seen = self._idempotency.get(key)
            if seen is not None:
                if seen[0] != fingerprint:
                    return self._error(400, "Keys for idempotent requests can only be used with the same "
                                            "parameters they were first used with.", type="idempotency_error")
                if self._lose(request, params):
                    raise web.HTTPServiceUnavailable()
                return web.json_response(seen[2], status=seen[1], headers={"Idempotent-Replayed": "true",
                                                                           "Idempotency-Key": key})
        match = route.pattern.match(request.path)
        assert match is not None
        status, body = self._answer(route.method, route.template, match.groups(), params)
        if key and request.method == "POST":
            self._idempotency[key] = (fingerprint, status, body)
        if status < 300:
            self.calls.append((request.method, request.path, params))
        if self._lose(request, params):
            raise web.HTTPServiceUnavailable()
        return web.json_response(body, status=status, headers={"Request-Id": _new_id("req"),
                                                               "Stripe-Version": API_VERSION})

    def _answer(self, method: str, template: str, args: tuple[str, ...], p: dict[str, Any]
                ) -> tuple[int, dict[str, Any]]:
        if template == "/v1/customers" and method == "GET":
            customers = [c for c in self.customers.values() if p.get("email") in (None, c.get("email"))]
            return self._page(customers, p, "/v1/customers")
        if template == "/v1/subscriptions" and method == "GET":
            status = p.get("status")
            subs = [s for s in self.subscriptions.values() if p.get("customer") in (None, s["customer"])
                    and p.get("price") in (None, *(i["price"]["id"] for i in s["items"]["data"]))
                    and (status == "all" or (status is None and s["status"] != "canceled") or status == s["status"]
                         or (status == "ended" and s["status"] in ("canceled", "incomplete_expired")))]
            return self._page(subs, p, "/v1/subscriptions")
        if template == "/v1/customers" and method == "POST":
            return 200, self._create_customer(p)
        if template == "/v1/products" and method == "POST":
            return 200, self._create_product(p)
        if template == "/v1/prices" and method == "GET":
            keys = p.get("lookup_keys") or []
            found = [x for x in self.prices.values() if not keys or x["lookup_key"] in keys]
            return 200, self._list(found[: int(p.get("limit", 10))], "/v1/prices")
        if template == "/v1/prices" and method == "POST":
            return self._create_price(p)
        if template == "/v1/prices/{price}" and method == "GET":
            price = self.prices.get(args[0])
            return (200, price) if price else self._missing("price", args[0])
        if template == "/v1/subscriptions" and method == "POST":
            return self._create_subscription(p)
        if template == "/v1/subscriptions/{subscription_exposed_id}":
            sub = self.subscriptions.get(args[0])
            if sub is None:
                return self._missing("subscription", args[0])
            if method == "GET":
                return 200, sub
            if method == "POST":
                return self._update_subscription(sub, p)
            return 200, self._cancel(sub, reason="cancellation_requested")
        self._violation(f"{method} {template}: not implemented by the fake")
        return 400, {"error": {"type": "invalid_request_error", "message": "not implemented by the fake Stripe"}}

    def _missing(self, kind: str, ident: str) -> tuple[int, dict[str, Any]]:
        return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                               "message": f"No such {kind}: '{ident}'", "param": "id"}}

    @staticmethod
    def _list(items: list[dict[str, Any]], url: str, has_more: bool = False) -> dict[str, Any]:
        return {"object": "list", "data": items, "has_more": has_more, "url": url}

    def _page(self, items: list[dict[str, Any]], p: dict[str, Any], url: str) -> tuple[int, dict[str, Any]]:
        """A list page as Stripe gives it: newest first, `created` range, `starting_after`, `limit` (1-100)."""
        created = p.get("created")
        if created is not None:
            bounds = created if isinstance(created, dict) else {"gte": created, "lte": created}
            checks = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b,
                      "lte": lambda a, b: a <= b}
            items = [x for x in items if all(checks[op](x["created"], int(v)) for op, v in bounds.items())]
        items = list(reversed(items))  # kept in creation order: newest first
        if p.get("starting_after"):
            ids = [x["id"] for x in items]
            if p["starting_after"] not in ids:
                return 400, {"error": {"type": "invalid_request_error", "param": "starting_after",
                                       "message": f"No such object: '{p['starting_after']}'"}}
            items = items[ids.index(p["starting_after"]) + 1:]
        limit = int(p.get("limit", 10))
        if not 1 <= limit <= 100:
            return 400, {"error": {"type": "invalid_request_error", "param": "limit",
                                   "message": "This value must be between 1 and 100"}}
        return 200, self._list(items[:limit], url, has_more=len(items) > limit)

    def now(self) -> int:
        """Stripe's clock: real seconds, strictly increasing per event (orders events that share a second)."""
        self._clock = max(int(time.time()), self._clock + 1)
        return self._clock

    def _template(self, kind: str) -> dict[str, Any]:
        return copy.deepcopy(self.fixtures[kind])

    def _create_customer(self, p: dict[str, Any]) -> dict[str, Any]:
        c = self._template("customer")
        c.update(id=_new_id("cus"), created=int(time.time()), name=p.get("name"), email=p.get("email"),
                 metadata=p.get("metadata") or {}, discount=None)
        self.customers[c["id"]] = c
        self.created["customer"] += 1
        self._event("customer.created", c)
        return c

    def _create_product(self, p: dict[str, Any]) -> dict[str, Any]:
        prod = self._template("product")
        prod.update(id=_new_id("prod"), created=int(time.time()), name=p["name"], description=None,
                    metadata=p.get("metadata") or {}, default_price=None, package_dimensions=None)
        self.products[prod["id"]] = prod
        self.created["product"] += 1
        return prod

    def _create_price(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if p.get("product") not in self.products:
            return self._missing("product", str(p.get("product")))
        if any(x["lookup_key"] == p.get("lookup_key") for x in self.prices.values() if p.get("lookup_key")):
            return 400, {"error": {"type": "invalid_request_error", "message": "A price with this lookup_key "
                                   "already exists", "param": "lookup_key"}}
        price = self._template("price")
        recurring = p.get("recurring") or {}
        price.update(id=_new_id("price"), created=int(time.time()), product=p["product"],
                     unit_amount=int(p.get("unit_amount", 0)), unit_amount_decimal=str(p.get("unit_amount", 0)),
                     currency=p["currency"], lookup_key=p.get("lookup_key"), metadata=p.get("metadata") or {},
                     transform_quantity=None,
                     recurring={**price["recurring"], "interval": recurring.get("interval", "month")},
                     type="recurring" if recurring else "one_time")
        if not recurring:
            price["recurring"] = None
        self.prices[price["id"]] = price
        self.created["price"] += 1
        return 200, price

    def _item(self, sub_id: str, price: dict[str, Any], start: int) -> dict[str, Any]:
        item = self._template("subscription")["items"]["data"][0]
        item.update(id=_new_id("si"), created=start, subscription=sub_id, price=copy.deepcopy(price),
                    current_period_start=start, current_period_end=start + 30 * 86400, metadata={})
        item["plan"].update(id=price["id"], amount=price["unit_amount"], currency=price["currency"],
                            product=price["product"], billing_scheme="per_unit", interval_count=1, created=start)
        return item

    def _create_subscription(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if p.get("customer") not in self.customers:
            return self._missing("customer", str(p.get("customer")))
        items = p.get("items") or []
        if len(items) != 1 or items[0].get("price") not in self.prices:
            return self._missing("price", str(items[0].get("price") if items else None))
        sub = self._template("subscription")
        start = int(time.time())
        sub_id = _new_id("sub")
        sub.update(id=sub_id, created=start, start_date=start, billing_cycle_anchor=start, customer=p["customer"],
                   metadata=p.get("metadata") or {}, status="active", cancel_at=None, canceled_at=None,
                   ended_at=None, trial_end=None, trial_start=None, cancel_at_period_end=False,
                   pending_update=None, pause_collection=None, transfer_data=None, latest_invoice=None,
                   next_pending_invoice_item_invoice=None, pending_invoice_item_interval=None,
                   cancellation_details={"comment": None, "feedback": None, "reason": None})
        sub["items"] = self._list([self._item(sub_id, self.prices[items[0]["price"]], start)],
                                  f"/v1/subscription_items?subscription={sub_id}")
        self.subscriptions[sub_id] = sub
        self.created["subscription"] += 1
        self._event("customer.subscription.created", sub)
        return 200, sub

    def _update_subscription(self, sub: dict[str, Any], p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        previous: dict[str, Any] = {}
        for change in p.get("items") or []:
            item = next((i for i in sub["items"]["data"] if i["id"] == change.get("id")), None)
            if item is None or change.get("price") not in self.prices:
                return self._missing("price" if item else "subscription_item", str(change.get("price")))
            previous["items"] = copy.deepcopy(sub["items"])
            start = item["current_period_start"]
            item.update(self._item(sub["id"], self.prices[change["price"]], start) | {"id": item["id"]})
            self.created["price_change"] += 1
            if p.get("proration_behavior", "create_prorations") != "none":
                self.created["proration"] += 1
        if "cancel_at_period_end" in p:
            previous["cancel_at_period_end"] = sub["cancel_at_period_end"]
            sub["cancel_at_period_end"] = p["cancel_at_period_end"] == "true"
        if previous:
            self._event("customer.subscription.updated", sub, previous)
        return 200, sub

    def _cancel(self, sub: dict[str, Any], *, reason: str) -> dict[str, Any]:
        if sub["status"] != "canceled":
            now = int(time.time())
            sub.update(status="canceled", canceled_at=now, ended_at=now)
            sub["cancellation_details"]["reason"] = reason
            self.created["cancel"] += 1
            self._event("customer.subscription.deleted", sub)
        return sub

    # --- what happens inside Stripe (driven by the test) -------------------------------------------------
    def _set_status(self, sub: dict[str, Any], status: str) -> None:
        if sub["status"] != status:
            previous = {"status": sub["status"]}
            sub["status"] = status
            self._event("customer.subscription.updated", sub, previous)

    def _open_invoice(self, sub: dict[str, Any]) -> dict[str, Any]:
        open_one = next((i for i in self.invoices.values()
                         if i["parent"]["subscription_details"]["subscription"] == sub["id"] and i["status"] == "open"),
                        None)
        if open_one is not None:
            return open_one
        item = sub["items"]["data"][0]
        inv = self._template("invoice")
        inv_id = _new_id("in")
        inv.update(id=inv_id, created=int(time.time()), customer=sub["customer"], status="open",
                   amount_due=item["price"]["unit_amount"], amount_paid=0,
                   amount_remaining=item["price"]["unit_amount"], currency=item["price"]["currency"],
                   attempt_count=0, attempted=False, billing_reason="subscription_cycle", subscription=None,
                   hosted_invoice_url=f"https://invoice.stripe.com/i/{inv_id}", last_finalization_error=None,
                   status_transitions={"finalized_at": int(time.time()), "marked_uncollectible_at": None,
                                       "paid_at": None, "voided_at": None},
                   parent={"type": "subscription_details", "quote_details": None,
                           "subscription_details": {"metadata": copy.deepcopy(sub["metadata"]),
                                                    "subscription": sub["id"]}})
        inv["lines"]["data"] = []
        self.invoices[inv_id] = inv
        return inv

    def fail_payment(self, subscription_id: str, *, final: bool = False,
                     after_final: str = "unpaid") -> dict[str, Any]:
        """A payment attempt of the subscription's open invoice fails; `final`: Stripe gives up (no next
        attempt) and the subscription becomes `after_final` (unpaid or canceled)."""
        sub = self.subscriptions[subscription_id]
        inv = self._open_invoice(sub)
        inv["attempt_count"] += 1
        inv["attempted"] = True
        inv["next_payment_attempt"] = None if final else int(time.time()) + 3 * 86400
        if sub["status"] == "active":
            self._set_status(sub, "past_due")
        self._event("invoice.payment_failed", inv)
        if final:
            if after_final == "canceled":
                self._cancel(sub, reason="payment_failed")
            else:
                self._set_status(sub, after_final)
        return inv

    def pay(self, subscription_id: str) -> dict[str, Any]:
        sub = self.subscriptions[subscription_id]
        inv = self._open_invoice(sub)
        inv.update(status="paid", amount_paid=inv["amount_due"], amount_remaining=0, next_payment_attempt=None,
                   attempt_count=inv["attempt_count"] + 1, attempted=True)
        inv["status_transitions"]["paid_at"] = int(time.time())
        self._event("invoice.payment_succeeded", inv)
        if sub["status"] != "canceled":
            self._set_status(sub, "active")
        return inv

    def change_price_in_portal(self, subscription_id: str, price_id: str) -> None:
        sub = self.subscriptions[subscription_id]
        item = sub["items"]["data"][0]
        self._update_subscription(sub, {"items": [{"id": item["id"], "price": price_id}],
                                        "proration_behavior": "create_prorations"})

    def subscription_of(self, tenant_id: Any) -> dict[str, Any] | None:
        found = [s for s in self.subscriptions.values() if s["metadata"].get("tenantId") == str(tenant_id)]
        return found[-1] if found else None

    # --- events ------------------------------------------------------------------------------------------
    def _event(self, type: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
        event = self._template("event")
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous:
            data["previous_attributes"] = copy.deepcopy(previous)
        event.update(id=_new_id("evt"), type=type, created=self.now(), data=data, api_version=API_VERSION,
                     pending_webhooks=1, request={"id": _new_id("req"), "idempotency_key": None})
        self.events.append(event)
        if self._deliver_url is not None:
            task = asyncio.get_running_loop().create_task(self._post(self._deliver_url, event))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
        return event

    def deliver_to(self, url: str | None) -> None:
        """Send every new event to `url` as it happens (signed with `webhook_secret`)."""
        self._deliver_url = url

    def signed(self, event: dict[str, Any], *, secret: str | None = None,
               timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(event).encode()
        return body, {"Stripe-Signature": stripe_signature(body, secret or self.webhook_secret, timestamp),
                      "Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0 (+fake)"}

    async def _post(self, url: str, event: dict[str, Any]) -> None:
        assert self._session is not None
        body, headers = self.signed(event)
        for _ in range(20):  # Stripe retries a failed delivery (much later; here at once)
            try:
                async with self._session.post(url, data=body, headers=headers) as resp:
                    self.delivery_statuses.append(resp.status)
                    if resp.status < 300:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)

    async def send(self, events: list[dict[str, Any]], *, to: str, duplicates: bool = False, shuffle: bool = False,
                   seed: int = 7, concurrency: int = 8) -> list[int]:
        """POST `events` signed to `to` (each twice with `duplicates`, in a shuffled order with `shuffle`);
        returns the status of each POST."""
        batch = [e for e in events for _ in range(2 if duplicates else 1)]
        if shuffle:
            random.Random(seed).shuffle(batch)
        limit = asyncio.Semaphore(concurrency)
        assert self._session is not None
        session = self._session

        async def one(event: dict[str, Any]) -> int:
            async with limit:
                body, headers = self.signed(event)
                async with session.post(to, data=body, headers=headers) as resp:
                    return resp.status

        return list(await asyncio.gather(*(one(e) for e in batch)))


def fake_stripe(**kwargs: Any) -> FakeStripe:
    """`async with fake_stripe() as fake:` Stripe's API (and its webhooks), served while inside."""
    return FakeStripe(**kwargs)
