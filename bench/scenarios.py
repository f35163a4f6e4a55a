"""The dispatcher scenarios: (b) throughput, (d) latency, (e) fan-out, (f) one hanging endpoint.

Each scenario creates its own endpoints through the API (verified by the receiver's challenge echo, so
ACTIVE), uses its own receiver paths, and deletes its endpoints at the end, so no scenario receives
another's events. Receipt times are `time.time()` in the receiver process (same host clock).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from bench import client_gc
from bench.kafka import (
    TENANTS_TOPIC,
    make_producer,
    produce,
    produce_one,
    tenant_created_batch,
    tenant_updated,
)
from bench.machine import CpuMonitor, describe
from bench.receiver import Receiver
from bench.stack import Api, succeeded

Progress = Callable[[str], None]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


# --- (b) throughput ------------------------------------------------------------------------------
async def throughput(api: Api, receiver: Receiver, bootstrap: str, n: int, *, max_concurrency: int,
                     timeout: float, progress: Progress, cpu: CpuMonitor) -> dict[str, Any]:
    group = "tp"
    endpoint = await api.create_endpoint(receiver.url(f"/{group}/1"), ["tenant.created"],
                                         max_concurrency=max_concurrency, description="bench throughput")
    await receiver.reset(group)
    messages = tenant_created_batch(n)
    before = succeeded(await api.metrics())
    producer = make_producer(bootstrap)
    await producer.start()
    loop = asyncio.get_running_loop()
    try:
        t_start = loop.time()
        cpu0 = cpu.snapshot()
        producing = asyncio.create_task(produce(producer, TENANTS_TOPIC, messages))
        last_count, last_change = 0, t_start
        printed_count, last_print = 0, t_start
        produced_in = None
        while True:
            await asyncio.sleep(0.25)
            now = loop.time()
            if produced_in is None and producing.done():
                producing.result()
                produced_in = now - t_start
            count = await receiver.count(group)
            if count != last_count:
                last_count, last_change = count, now
            if now - last_print >= 2.0 or count >= n:
                progress(f"  (b) {count:>6}/{n} delivered  [{now - t_start:5.1f}s, "
                         f"{(count - printed_count) / (now - last_print):,.0f}/s]")
                printed_count, last_print = count, now
            if count >= n:
                break
            if now - last_change > 30 or now - t_start > timeout:
                progress(f"  (b) stopped waiting: {count}/{n} after {now - t_start:.0f}s")
                break
        usage = CpuMonitor.usage(cpu0, cpu.snapshot())
        progress(f"  (b) {describe(usage)}")
        await producing
        produced_in = produced_in if produced_in is not None else loop.time() - t_start
        # "Everything recorded": the succeeded counter moves only after the attempt's row is committed.
        recorded_at = None
        deadline = loop.time() + 60
        while loop.time() < deadline:
            if succeeded(await api.metrics()) - before >= n:
                recorded_at = time.time()
                break
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()
    records = await receiver.records(group)
    times = sorted(r[2] for r in records)
    ids = Counter(r[1] for r in records)
    distinct = len(ids)
    duplicates = sum(c - 1 for c in ids.values())
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    rate = (len(times) - 1) / span if span == span and span > 0 else 0.0
    steady = float("nan")
    if len(times) >= 20:  # the middle 80 %: without the ramp-up and the tail
        lo, hi = times[len(times) // 10], times[len(times) * 9 // 10]
        steady = (len(times) * 8 // 10) / (hi - lo) if hi > lo else float("nan")
    db = await _db_counts(api, endpoint["id"])
    recorded_rate = n / (recorded_at - times[0]) if recorded_at and times else 0.0
    progress(f"  (b) {len(times)} received ({distinct} distinct, {duplicates} duplicates) in {span:.2f}s: "
             f"{rate:,.0f}/s (middle 80 %: {steady:,.0f}/s); all recorded after "
             f"{(recorded_at - times[0]) if recorded_at and times else float('nan'):.2f}s; "
             f"db: {db}")
    await api.delete_endpoints([endpoint["id"]])
    await receiver.reset(group)
    return {
        "events": n, "received": len(times), "distinct": distinct, "duplicates": duplicates,
        "seconds": span, "rate": rate, "steady_rate": steady, "recorded_rate": recorded_rate,
        "all_recorded": recorded_at is not None, "produce_seconds": produced_in,
        "max_concurrency": max_concurrency, "db": db, "cpu": usage,
        # the endpoint's verification is one more SUCCEEDED delivery with one attempt
        "complete": distinct == n and duplicates == 0 and recorded_at is not None
        and db.get("attempts_ok", 0) >= n and db.get("deliveries", {}).get("SUCCEEDED", 0) >= n,
    }


async def _db_counts(api: Api, endpoint_id: str) -> dict[str, Any]:
    """What the dispatcher recorded for one endpoint (its own database; read-only)."""
    url = api.stack.database_urls["webhook-dispatcher"].replace("postgresql+asyncpg://", "postgresql://", 1)
    try:
        conn = await asyncpg.connect(url)
    except Exception as exc:  # informative only
        return {"error": repr(exc)[:200]}
    try:
        eid = uuid.UUID(endpoint_id)
        attempts = await conn.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE success) AS ok FROM webhook_attempts "
            "WHERE endpoint_id = $1", eid)
        statuses = await conn.fetch(
            "SELECT status, count(*) AS n FROM webhook_deliveries WHERE endpoint_id = $1 GROUP BY status", eid)
        return {"attempts": attempts["total"], "attempts_ok": attempts["ok"],
                "deliveries": {r["status"]: r["n"] for r in statuses}}
    except Exception as exc:
        return {"error": repr(exc)[:200]}
    finally:
        await conn.close()


# --- (d)/(f) latency -----------------------------------------------------------------------------
def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


async def _stages(api: Api, records: list[Any]) -> dict[str, float]:
    """Where an event's time goes, p50 of each hop (ms), from the rows both services wrote (same clock):
    event timestamp -> Kafka acknowledged it to the relay (`published_at`, set right after the ack) ->
    dispatcher consumed it (inbox `processed_at`) -> attempt started -> receiver got it."""
    ids = [uuid.UUID(r[1]) for r in records if r[1]]
    received = {uuid.UUID(r[1]): r[2] for r in records if r[1]}
    stamps = {uuid.UUID(r[1]): _epoch(r[4]) for r in records if r[1] and r[4]}

    async def fetch(service: str, sql: str) -> dict[uuid.UUID, float]:
        url = api.stack.database_urls[service].replace("postgresql+asyncpg://", "postgresql://", 1)
        conn = await asyncpg.connect(url)
        try:
            return {r[0]: r[1].timestamp() for r in await conn.fetch(sql, ids)}
        finally:
            await conn.close()

    try:
        picked = await fetch("tenants", "SELECT event_id, published_at FROM outbox WHERE event_id = ANY($1)")
        consumed = await fetch("webhook-dispatcher", "SELECT event_id, processed_at FROM inbox "
                                                     "WHERE event_id = ANY($1)")
        started = await fetch("webhook-dispatcher", "SELECT d.event_id, min(a.started_at) FROM webhook_attempts a "
                                                    "JOIN webhook_deliveries d ON d.id = a.delivery_id "
                                                    "WHERE d.event_id = ANY($1) GROUP BY d.event_id")
    except Exception as exc:  # informative only
        return {"error": repr(exc)[:200]}  # type: ignore[dict-item]
    hops = {"to_published": (stamps, picked), "relay_to_consumer": (picked, consumed),
            "consumer_to_attempt": (consumed, started), "attempt_to_receipt": (started, received)}
    return {name: percentile([(b[i] - a[i]) * 1000 for i in ids if i in a and i in b], 50)
            for name, (a, b) in hops.items()}


async def _api_load(api: Api, rate: float, seconds: float) -> tuple[list[tuple[str | None, float, float, int]],
                                                                    float]:
    """Open loop: call i is sent at t0 + i / rate whatever the earlier ones are doing."""
    n = max(1, int(rate * seconds))
    loop = asyncio.get_running_loop()
    with client_gc.held():
        t0 = loop.time()
        tasks = []
        for i in range(n):
            delay = t0 + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(api.create_tenant()))
        sent_for = loop.time() - t0
        results = await asyncio.gather(*tasks)
    return list(results), (n - 1) / sent_for if sent_for > 0 else float("nan")


async def _latency_run(api: Api, receiver: Receiver, path: str, *, rate: float, seconds: float,
                       warmup: float, label: str, progress: Progress, cpu: CpuMonitor) -> dict[str, Any]:
    group = path.strip("/").split("/")[0]
    if warmup > 0:
        warm, _ = await _api_load(api, rate, warmup)
        ids = [r[0] for r in warm if r[0]]
        await receiver.wait_count(group, len(ids), timeout=30, interval=0.1)
    await receiver.reset(group)
    progress(f"  {label} {rate:.0f} tenants/s for {seconds:.0f}s ...")
    cpu0 = cpu.snapshot()
    results, achieved = await _api_load(api, rate, seconds)
    usage = CpuMonitor.usage(cpu0, cpu.snapshot())
    sent = {tid: t for tid, t, _, _ in results if tid}
    api_errors = Counter(status for tid, _, _, status in results if not tid)
    got = await receiver.wait_count(group, len(sent), timeout=30, interval=0.1)
    records = [r for r in await receiver.records(group) if r[0] == path]
    received: dict[str, float] = {}
    dispatch_ms: list[float] = []
    duplicates = 0
    for _, _, t, tid, timestamp in records:
        if tid in received:
            duplicates += 1
        elif tid in sent:
            received[tid] = t
            if timestamp:
                dispatch_ms.append((t - _epoch(timestamp)) * 1000)
    latencies = [(received[tid] - sent[tid]) * 1000 for tid in received]
    api_ms = [took * 1000 for tid, _, took, _ in results if tid]
    answered = {tid: t + took for tid, t, took, _ in results if tid}
    after_answer_ms = [(received[tid] - answered[tid]) * 1000 for tid in received]
    out = {
        "calls": len(results), "api_rate": achieved, "api_ok": len(sent), "api_errors": dict(api_errors),
        "received": len(received), "missing": len(sent) - len(received), "duplicates": duplicates,
        "p50_ms": percentile(latencies, 50), "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99), "max_ms": max(latencies, default=float("nan")),
        "api_p50_ms": percentile(api_ms, 50), "api_p99_ms": percentile(api_ms, 99),
        # the event's own timestamp (set by the tenants service inside the request) -> webhook received
        "event_p50_ms": percentile(dispatch_ms, 50), "event_p99_ms": percentile(dispatch_ms, 99),
        # the API's answer -> webhook received
        "after_answer_p50_ms": percentile(after_answer_ms, 50),
        "after_answer_p99_ms": percentile(after_answer_ms, 99),
        "cpu": usage,
        "stages_p50_ms": await _stages(api, records),
    }
    progress(f"  {label} {out['api_ok']}/{out['calls']} calls at {achieved:.0f}/s, {out['received']} webhooks "
             f"(missing {out['missing']}, dup {duplicates}, receiver count {got}): p50 {out['p50_ms']:.1f} ms, "
             f"p99 {out['p99_ms']:.1f} ms, max {out['max_ms']:.1f} ms; API call alone p50 "
             f"{out['api_p50_ms']:.1f} ms p99 {out['api_p99_ms']:.1f} ms; event timestamp -> webhook p50 "
             f"{out['event_p50_ms']:.1f} ms p99 {out['event_p99_ms']:.1f} ms")
    st = out["stages_p50_ms"]
    if "error" not in st:
        progress(f"  {label} p50 per hop: event timestamp -> published (Kafka ack) {st['to_published']:.1f} ms -> "
                 f"dispatcher consumed it {st['relay_to_consumer']:.1f} ms -> attempt started "
                 f"{st['consumer_to_attempt']:.1f} ms -> received {st['attempt_to_receipt']:.1f} ms")
    progress(f"  {label} {describe(usage)}")
    await receiver.reset(group)
    return out


async def _latency_runs(api: Api, receiver: Receiver, path: str, key: str, *, rate: float, seconds: float,
                        warmup: float, progress: Progress, cpu: CpuMonitor, low_rate: float) -> dict[str, Any]:
    """The measured run at `rate`; first, when `low_rate` > 0, a short informative one at that rate."""
    low = None
    if low_rate > 0:
        low = await _latency_run(api, receiver, path, rate=low_rate, seconds=min(seconds, 5.0), warmup=1.0,
                                 label=f"({key}, info)", progress=progress, cpu=cpu)
    out = await _latency_run(api, receiver, path, rate=rate, seconds=seconds, warmup=warmup, label=f"({key})",
                             progress=progress, cpu=cpu)
    if low is not None:
        out["low_rate"] = low
    return out


async def latency(api: Api, receiver: Receiver, *, rate: float, seconds: float, warmup: float,
                  progress: Progress, cpu: CpuMonitor, low_rate: float = 0.0) -> dict[str, Any]:
    """(d) at `rate`; first, when `low_rate` > 0, a short informative run at that rate (same endpoint), which
    tells the dispatcher path's own latency apart from a saturated API."""
    path = "/lat/d"
    endpoint = await api.create_endpoint(receiver.url(path), ["tenant.created"], description="bench latency")
    try:
        return await _latency_runs(api, receiver, path, "d", rate=rate, seconds=seconds, warmup=warmup,
                                   progress=progress, cpu=cpu, low_rate=low_rate)
    finally:
        await api.delete_endpoints([endpoint["id"]])


async def hanging(api: Api, receiver: Receiver, *, rate: float, seconds: float, warmup: float,
                  progress: Progress, cpu: CpuMonitor, low_rate: float = 0.0) -> dict[str, Any]:
    """(f): (d) with one more endpoint, subscribed to the same events, whose every request hangs."""
    path = "/lat/f"
    healthy = await api.create_endpoint(receiver.url(path), ["tenant.created"], description="bench healthy")
    hang = await api.create_endpoint(receiver.url("/hang/f"), ["tenant.created"], description="bench hanging")
    try:
        out = await _latency_runs(api, receiver, path, "f", rate=rate, seconds=seconds, warmup=warmup,
                                  progress=progress, cpu=cpu, low_rate=low_rate)
        counts = await receiver.counts()
        out["hang_requests"] = counts.get("hang", 0)
        out["hang_in_flight"] = counts.get("_hanging", 0)
        progress(f"  (f) the hanging endpoint got {out['hang_requests']} requests, "
                 f"{out['hang_in_flight']} still hanging (the receiver does not notice a client giving up)")
        return out
    finally:
        await api.delete_endpoints([healthy["id"], hang["id"]])
        await receiver.release_hangs()


# --- (e) fan-out ---------------------------------------------------------------------------------
async def fanout(api: Api, receiver: Receiver, bootstrap: str, *, endpoints: int, repeats: int,
                 progress: Progress, cpu: CpuMonitor) -> dict[str, Any]:
    group = "fan"
    t = time.perf_counter()
    created = await api.create_endpoints([receiver.url(f"/{group}/{i}") for i in range(endpoints)],
                                         ["tenant.updated"], description="bench fan-out")
    progress(f"  (e) {len(created)} endpoints created and verified in {time.perf_counter() - t:.1f}s")
    producer = make_producer(bootstrap)
    await producer.start()
    runs: list[dict[str, Any]] = []
    cpu0 = cpu.snapshot()
    try:
        for i in range(repeats):
            await receiver.reset(group)
            envelope = tenant_updated()
            t0 = time.time()
            await produce_one(producer, TENANTS_TOPIC, envelope)
            got = await receiver.wait_count(group, endpoints, timeout=10, interval=0.005)
            records = await receiver.records(group)
            mine = [r for r in records if r[1] == envelope["id"]]
            paths = {r[0] for r in mine}
            times = [r[2] for r in mine]
            run = {"endpoints_reached": len(paths), "requests": len(mine), "count": got,
                   "first_ms": (min(times) - t0) * 1000 if times else float("nan"),
                   "all_ms": (max(times) - t0) * 1000 if len(paths) == endpoints else float("nan")}
            runs.append(run)
            progress(f"  (e) run {i + 1}/{repeats}: {len(paths)}/{endpoints} endpoints, first after "
                     f"{run['first_ms']:.0f} ms, all after {run['all_ms']:.0f} ms")
            await asyncio.sleep(0.3)
    finally:
        await producer.stop()
        await api.delete_endpoints([e["id"] for e in created])
        await receiver.reset(group)
    usage = CpuMonitor.usage(cpu0, cpu.snapshot())
    progress(f"  (e) {describe(usage)}")
    alls = [r["all_ms"] for r in runs]
    complete = all(r["endpoints_reached"] == endpoints and r["requests"] == endpoints for r in runs)
    return {"endpoints": endpoints, "repeats": repeats, "runs": runs, "complete": complete,
            "median_ms": statistics.median(alls) if alls else float("nan"), "cpu": usage,
            "max_ms": max(alls) if alls else float("nan")}
