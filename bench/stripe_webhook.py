"""(s) Stripe's webhook into billing: acknowledgement latency at a steady rate, then how fast stored events are
processed (state written and the `billing.*` event committed to the outbox) under a burst.

Billing runs only for this scenario (started first, stopped after), so its tenant consumer never turns the
other scenarios' tenants into Stripe work. Events are signed with the webhook secret configured here; they
are `invoice.payment_failed` of synthetic subscriptions (tenant in the metadata), each one a state write and
one outbox event. The POSTs go straight to billing's port (no gateway in the measured path).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any

import aiohttp
import orjson

from bench import client_gc
from bench.machine import CpuMonitor, describe
from bench.scenarios import Progress, percentile
from bench.stack import Api

SERVICE = "billing"
WEBHOOK = "/api/webhooks/stripe"
PROCESSED = "billing_stripe_events_processed_total"


def _event(tenant: uuid.UUID, n: int) -> dict[str, Any]:
    sub, invoice = f"sub_bench{tenant.hex[:12]}", f"in_bench{uuid.uuid4().hex[:16]}"
    now = int(time.time())
    return {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": "invoice.payment_failed", "created": now + n,
            "api_version": "2026-06-24.dahlia", "livemode": False, "pending_webhooks": 1,
            "data": {"object": {
                "id": invoice, "object": "invoice", "customer": f"cus_{sub}", "status": "open", "amount_due": 4900,
                "amount_paid": 0, "currency": "usd", "attempt_count": 1, "next_payment_attempt": now + 86400,
                "hosted_invoice_url": f"https://invoice.stripe.com/i/{invoice}",
                "parent": {"type": "subscription_details",
                           "subscription_details": {"subscription": sub, "metadata": {"tenantId": str(tenant)}}}}}}


def _signed(event: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(event)
    t = int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"Stripe-Signature": f"t={t},v1={mac}", "Content-Type": "application/json"}


async def _processed(api: Api, session: aiohttp.ClientSession) -> float:
    for attempt in range(3):  # a kept-alive connection the server just closed fails once
        try:
            async with session.get(api.url(SERVICE, "/metrics")) as resp:
                text = (await resp.read()).decode()
            break
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if attempt == 2:
                raise
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(PROCESSED + "{"))


async def _configure(api: Api) -> str:
    secret = "whsec_" + secrets.token_hex(24)
    body = {"publishableKey": "pk_test_" + secrets.token_hex(12), "secretKey": "sk_test_" + secrets.token_hex(12),
            "webhookSecret": secret}
    async with api.session.put(api.url(SERVICE, "/api/platform/integrations/stripe"), json=body,
                               headers=api.headers) as resp:
        if resp.status != 200:
            raise RuntimeError(f"configuring Stripe failed: {resp.status} {(await resp.read())[:300]!r}")
    return secret


async def _post(session: aiohttp.ClientSession, url: str, event: dict[str, Any], secret: str) -> tuple[float, int]:
    body, headers = _signed(event, secret)
    t0 = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            return time.perf_counter() - t0, resp.status
    except aiohttp.ClientError:
        return time.perf_counter() - t0, 0


async def _wait_processed(api: Api, session: aiohttp.ClientSession, target: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        done = await _processed(api, session)
        if done >= target or time.monotonic() > deadline:
            return done
        await asyncio.sleep(0.02)


async def stripe_webhook(api: Api, *, rate: float, seconds: float, burst: int, progress: Progress,
                         cpu: CpuMonitor) -> dict[str, Any]:
    from devstack._proc import free_port, terminate

    stack = api.stack
    await stack.start_services([SERVICE], ports={SERVICE: free_port()})
    process = stack.services[SERVICE].process
    cpu.track(SERVICE, process.pid if process else None)
    # Our own connections, idle-closed before uvicorn's 5 s keep-alive ends (else a reused one is reset).
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=2),
                                    timeout=aiohttp.ClientTimeout(total=30))
    try:
        secret = await _configure(api)
        url = api.url(SERVICE, WEBHOOK)
        tenants = [uuid.uuid4() for _ in range(200)]
        base = await _processed(api, session)
        # 1. Acknowledgement at a steady rate: one POST every 1/rate s, each timed on its own.
        calls = int(rate * seconds)
        progress(f"(s) acknowledgement: {calls} events at {rate:.0f}/s")
        with client_gc.held():
            interval, start = 1.0 / rate, time.perf_counter()
            tasks = []
            for i in range(calls):
                delay = start + i * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(_post(session, url, _event(tenants[i % len(tenants)], i), secret)))
            acks = await asyncio.gather(*tasks)
        durations = [d * 1000 for d, status in acks if status == 200]
        await _wait_processed(api, session, base + calls, 60)
        # 2. Processing under a burst: everything POSTed as fast as 64 connections allow; the rate counts
        #    from the first POST to the last event applied.
        progress(f"(s) processing: a burst of {burst} events")
        before = await _processed(api, session)
        events = [_event(tenants[i % len(tenants)], i) for i in range(burst)]
        limit = asyncio.Semaphore(64)
        snap = cpu.snapshot()

        async def one(event: dict[str, Any]) -> int:
            async with limit:
                return (await _post(session, url, event, secret))[1]

        t0 = time.perf_counter()
        statuses = await asyncio.gather(*(one(e) for e in events))
        sent = time.perf_counter() - t0
        done = await _wait_processed(api, session, before + burst, 120)
        took = time.perf_counter() - t0
        usage = CpuMonitor.usage(snap, cpu.snapshot())
        progress(f"(s) burst cpu: {describe(usage)}")
        # Billing's own CPU per event (acknowledgement + applying it): comparable between runs whatever
        # the other processes of a shared machine take, which the rates are not.
        cpu_ms = usage.get(SERVICE, 0.0) / 100 * took * 1000 / burst if burst else 0.0
        progress(f"(s) billing cpu per event (ack + apply): {cpu_ms:.2f} ms")
        return {
            "calls": calls, "acked": len(durations), "ack_rate": rate,
            "ack_p50_ms": percentile(durations, 0.50), "ack_p99_ms": percentile(durations, 0.99),
            "burst": burst, "burst_acked": sum(1 for s in statuses if s == 200),
            "ingest_rate": burst / sent if sent else 0.0,
            "processed": int(done - before), "processed_rate": (done - before) / took if took else 0.0,
            "cpu": usage, "billing_cpu_ms_per_event": cpu_ms,
        }
    finally:
        await session.close()
        service = stack.services.pop(SERVICE, None)
        if service is not None:
            await terminate(service.process, 10)
