"""The stack under test and a small API client: owner login, endpoints, tenants, dispatcher metrics."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from devstack._proc import free_port
from devstack.supervisor import Stack

SERVICES = ["auth", "tenants", "webhook-dispatcher"]
OWNER_EMAIL = "bench-owner@bench.local"

# Settings that would otherwise point the stack at something else than a fresh local one.
_ISOLATE = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")


def stack_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ISOLATE and not k.endswith("_DATABASE_URL")}
    for name in SERVICES:  # ports are chosen here (free ones), never from the environment
        env.pop(f"{name.upper().replace('-', '_')}_PORT", None)
    return env


def extra_env(password: str, log_level: str) -> dict[str, str]:
    return {
        "PLATFORM_OWNER_EMAIL": OWNER_EMAIL,
        "PLATFORM_OWNER_PASSWORD": password,
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOWED_PRIVATE_CIDRS": "127.0.0.1/32",
        # One owner token drives 200 API calls/s; the default per-caller limit is 1200/min.
        "RATE_LIMIT_PER_MINUTE": "10000000",
        "LOG_LEVEL": log_level,
        # (s) billing makes no Stripe API call; were it to, it would fail at once, never reach Stripe.
        "STRIPE_API_BASE": "http://127.0.0.1:9",
    }


def make_stack(data_dir: Path, *, log_level: str, progress: Callable[[str], None]) -> tuple[Stack, str]:
    """The stack object (nothing started yet) and the owner's password."""
    password = "Bench-" + secrets.token_urlsafe(18)
    stack = Stack(data_dir, env=stack_env(), progress=progress, extra_env=extra_env(password, log_level))
    return stack, password


async def start_stack(stack: Stack) -> None:
    """PostgreSQL + tansu, then auth, tenants and the dispatcher on free ports (migrated, /readyz 200)."""
    await stack.start_infra()
    await stack.start_services(SERVICES, ports={n: free_port() for n in SERVICES})


class Api:
    """aiohttp client of the services, straight to their ports (no gateway in the measured path)."""

    def __init__(self, stack: Stack, password: str) -> None:
        self.stack = stack
        self.password = password
        self.token = ""
        connector = aiohttp.TCPConnector(limit=400, limit_per_host=0, keepalive_timeout=30)
        self.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30),
                                             json_serialize=lambda v: orjson.dumps(v).decode())

    def url(self, service: str, path: str) -> str:
        return f"{self.stack.services[service].url}{path}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def close(self) -> None:
        await self.session.close()

    async def login(self) -> None:
        async with self.session.post(self.url("auth", "/api/auth/login"),
                                     json={"email": OWNER_EMAIL, "password": self.password}) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"owner login failed: {resp.status} {body[:300]!r}")
            self.token = orjson.loads(body)["accessToken"]

    # --- webhook endpoints ---------------------------------------------------------------------
    async def create_endpoint(self, url: str, events: Iterable[str], *, max_concurrency: int | None = None,
                              description: str = "bench") -> dict[str, Any]:
        payload: dict[str, Any] = {"url": url, "events": list(events), "description": description}
        if max_concurrency is not None:
            payload["maxConcurrency"] = max_concurrency
        async with self.session.post(self.url("webhook-dispatcher", "/api/platform/webhooks"),
                                     json=payload, headers=self.headers) as resp:
            body = await resp.read()
            if resp.status != 201:
                raise RuntimeError(f"POST /api/platform/webhooks {url}: {resp.status} {body[:500]!r}")
        endpoint = orjson.loads(body)
        if endpoint.get("status") != "ACTIVE":
            raise RuntimeError(f"endpoint {url} is {endpoint.get('status')} after creation, not ACTIVE: "
                               f"{str(endpoint)[:500]}")
        return endpoint

    async def create_endpoints(self, urls: list[str], events: Iterable[str], *, parallel: int = 8,
                               **kwargs: Any) -> list[dict[str, Any]]:
        sem = asyncio.Semaphore(parallel)
        events = list(events)

        async def one(url: str) -> dict[str, Any]:
            async with sem:
                return await self.create_endpoint(url, events, **kwargs)

        return list(await asyncio.gather(*(one(u) for u in urls)))

    async def delete_endpoints(self, ids: Iterable[str], *, parallel: int = 8) -> None:
        sem = asyncio.Semaphore(parallel)

        async def one(endpoint_id: str) -> None:
            async with sem, self.session.delete(
                    self.url("webhook-dispatcher", f"/api/platform/webhooks/{endpoint_id}"),
                    headers=self.headers) as resp:
                body = await resp.read()
                if resp.status not in (204, 404):
                    raise RuntimeError(f"DELETE webhook {endpoint_id}: {resp.status} {body[:300]!r}")

        await asyncio.gather(*(one(i) for i in ids))

    # --- tenants -------------------------------------------------------------------------------
    async def create_tenant(self) -> tuple[str | None, float, float, int]:
        """POST a tenant; returns (tenant id or None, sent at [time.time()], call duration [s], status)."""
        name = f"Bench {uuid.uuid4().hex[:16]}"
        sent = time.time()
        t0 = time.perf_counter()
        try:
            async with self.session.post(self.url("tenants", "/api/platform/tenants"),
                                         json={"name": name, "plan": "Pro"}, headers=self.headers) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            return None, sent, time.perf_counter() - t0, 0
        took = time.perf_counter() - t0
        if status != 201:
            return None, sent, took, status
        return orjson.loads(body)["id"], sent, took, status

    # --- dispatcher metrics ----------------------------------------------------------------------
    async def metrics(self) -> dict[str, float]:
        """The dispatcher's counters of interest: `webhook_deliveries_total{outcome}` etc."""
        async with self.session.get(self.url("webhook-dispatcher", "/metrics")) as resp:
            text = (await resp.read()).decode()
        return parse_metrics(text)


_METRIC = re.compile(r'^(webhook_[a-z_]+)(?:\{([^}]*)\})?\s+([0-9.eE+-]+|NaN)$')


def parse_metrics(text: str) -> dict[str, float]:
    """`name{label="v"}` -> value, for the dispatcher's webhook_* series (histogram buckets left out)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _METRIC.match(line)
        if m is None or m.group(1).endswith("_bucket"):
            continue
        key = m.group(1) + (f"{{{m.group(2)}}}" if m.group(2) else "")
        try:
            out[key] = float(m.group(3))
        except ValueError:
            continue
    return out


def succeeded(metrics: dict[str, float]) -> float:
    return metrics.get('webhook_deliveries_total{outcome="succeeded"}', 0.0)
