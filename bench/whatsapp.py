"""(w) WhatsApp inbound: signed Cloud API webhooks at a fixed rate → acknowledgement latency, and inbound
message → the agent's reply handed to the provider (a fake Graph API in this process).

The conversations service is started for this scenario only (the dispatcher scenarios keep their stack),
with WHATSAPP_GRAPH_API_BASE pointing at the fake. Each message comes from a new contact, so the agent's
greeting is the reply measured: webhook sent (bench clock) → the fake received the send (same clock)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp
import asyncpg

from bench import client_gc
from bench.machine import CpuMonitor
from bench.scenarios import percentile
from bench.stack import Api
from common.testing.fake_whatsapp import fake_graph, sign, text_message, wamid
from devstack._proc import free_port

TARGET_ACK_P99_MS = 20.0
TARGET_REPLY_P50_MS = 100.0


async def _start_conversations(api: Api, graph_base: str) -> None:
    stack = api.stack
    if "conversations" in stack.services:
        return
    stack.extra_env["WHATSAPP_GRAPH_API_BASE"] = graph_base
    stack.extra_env["CONVERSATIONS_WORKER_PORT"] = str(free_port())  # its worker process's /healthz, /metrics
    await stack.start_services(["conversations"], ports={"conversations": free_port()})


async def _worker_pid(api: Api) -> int | None:
    """The conversations worker process (a child of the API, CONVERSATIONS_WORKERS=process), so the CPU line
    shows it apart from the API process (it would otherwise count under its parent's name)."""
    port = api.stack.extra_env["CONVERSATIONS_WORKER_PORT"]
    try:
        async with api.session.get(f"http://127.0.0.1:{port}/healthz") as resp:
            return int((await resp.json())["pid"]) if resp.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, KeyError, ValueError):
        return None  # workers inline (CONVERSATIONS_WORKERS=inline): all of it is the API's


# Where a reply's time goes, from the rows conversations wrote (same clock as the bench): webhook sent ->
# stored (`inbound_events.created_at`, the acknowledging INSERT) -> picked up by the inbound worker (its batch's
# `processed_at`) -> batch written (the row's `updated_at`, set by the batch's last statement before COMMIT) ->
# reply claimed by the outbound worker (the claim leases it: `next_attempt_at` = claim + LEASE_SECONDS, the lease
# of the default WHATSAPP_TIMEOUT_SECONDS, see `conversations.outbound.worker`) -> the provider got it.
LEASE_SECONDS = 2 * 10.0 * 3 + 10
_HOPS_SQL = """
SELECT e.payload->>'contact', e.created_at, e.processed_at, e.updated_at,
       m.next_attempt_at - make_interval(secs => $2)
FROM inbound_events e
JOIN conversations c ON c.channel_id = e.channel_id AND c.contact = e.payload->>'contact'
JOIN messages m ON m.conversation_id = c.id AND m.direction = 'OUTBOUND'
WHERE e.kind = 'message' AND e.payload->>'contact' = ANY($1)"""
HOPS = ("stored", "picked", "written", "claimed", "provider")


async def _hops(api: Api, sent_at: dict[str, float], provider_at: dict[str, float]) -> tuple[dict[str, Any], float]:
    """p50/p99 of each hop, and the measured messages per inbound batch (a batch's rows share `processed_at`):
    the worker's CPU per message falls as its batches grow, so compare that figure only at like batch sizes."""
    url = api.stack.database_urls["conversations"].replace("postgresql+asyncpg://", "postgresql://", 1)
    try:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(_HOPS_SQL, list(sent_at), LEASE_SECONDS)
        finally:
            await conn.close()
    except Exception as exc:  # informative only
        return {"error": repr(exc)[:200]}, 0.0
    gaps: dict[str, list[float]] = {hop: [] for hop in HOPS}
    for contact, *stamps in rows:
        if contact not in provider_at:
            continue
        times = [sent_at[contact], *(t.timestamp() for t in stamps), provider_at[contact]]
        for hop, a, b in zip(HOPS, times[:-1], times[1:], strict=True):
            gaps[hop].append((b - a) * 1000)
    batches = len({stamps[1] for _, *stamps in rows})
    return ({hop: {"p50": percentile(v, 50), "p99": percentile(v, 99)} for hop, v in gaps.items()},
            round(len(rows) / batches, 2) if batches else 0.0)


def _cpu_per_message(usage: dict[str, float], seconds: float, messages: int) -> dict[str, float]:
    """CPU ms per measured message of each component (usage: % of one core over `seconds`, from the first
    measured POST until the last reply arrived)."""
    if not messages:
        return {}
    return {name: round(pct / 100 * seconds * 1000 / messages, 2) for name, pct in usage.items()
            if name not in ("others", "total")}


async def inbound(api: Api, *, rate: float, seconds: float, warmup: float, progress: Any,
                  cpu: CpuMonitor) -> dict[str, Any]:
    async with fake_graph() as graph:
        await _start_conversations(api, graph.base_url)
        cpu.track("conversations", api.stack.services["conversations"].process.pid)
        cpu.track("conversations-worker", await _worker_pid(api))
        number, token, secret = str(uuid.uuid4().int)[:15], "EAAG" + uuid.uuid4().hex, "bench-" + uuid.uuid4().hex
        graph.add_number(number, token=token)
        base = api.url("conversations", "/api/platform/operations")
        async with api.session.post(f"{base}/channels", headers=api.headers, json={
                "name": "bench", "type": "CLOUD_API", "phoneNumberId": number, "accessToken": token,
                "appSecret": secret}) as resp:
            channel = json.loads(await resp.read())
            if resp.status != 201:
                raise RuntimeError(f"channel: {resp.status} {channel}")
        async with api.session.post(f"{base}/agents", headers=api.headers, json={
                "name": "bench", "channelId": channel["id"], "greeting": "Hola"}) as resp:
            if resp.status != 201:
                raise RuntimeError(f"agent: {resp.status} {await resp.read()!r}")
        url = api.url("conversations", f"/api/webhooks/whatsapp/{channel['id']}")
        sent_at: dict[str, float] = {}
        warm: set[str] = set()
        acks: list[float] = []
        failures = 0

        async def one(contact: str, measured: bool) -> None:
            nonlocal failures
            raw = json.dumps(text_message(number, contact, "hola", message_id=wamid())).encode()
            started = time.time()
            if measured:
                sent_at[contact] = started
            else:
                warm.add(contact)
            try:
                async with api.session.post(url, data=raw, headers={"content-type": "application/json",
                                                                     "X-Hub-Signature-256": sign(secret, raw)}) as r:
                    await r.read()
                    if r.status != 200:
                        failures += 1
            except (aiohttp.ClientError, TimeoutError):  # e.g. a kept-alive connection the server had just closed,
                # or no answer in time on an overloaded machine: a failure, not the end of the scenario
                failures += 1
                sent_at.pop(contact, None)
                return
            if measured:
                acks.append((time.time() - started) * 1000)

        async def load(duration: float, measured: bool) -> None:
            tasks, interval, t0 = [], 1.0 / rate, time.monotonic()
            for i in range(int(duration * rate)):
                delay = t0 + i * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(f"57{'8' if measured else '9'}{uuid.uuid4().int % 10**10:010d}",
                                                     measured)))
            await asyncio.gather(*tasks)

        async def replied(contacts: set[str] | dict[str, float], timeout: float = 30.0) -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and sum(1 for m in graph.sent if m["to"] in contacts) < len(contacts):
                await asyncio.sleep(0.2)

        progress(f"(w) warm-up {warmup:.0f}s at {rate:.0f}/s")
        await load(warmup, False)
        await replied(warm)  # so that the CPU per message below counts none of the warm-up's work
        cpu0 = cpu.snapshot()
        with client_gc.held():
            await load(seconds, True)
        cpu1 = cpu.snapshot()
        usage = CpuMonitor.usage(cpu0, cpu1)
        await replied(sent_at)
        cpu2 = cpu.snapshot()  # the measured messages' work, from their first POST to their last reply
        first: dict[str, float] = {}
        for m in graph.sent:
            if m["to"] in sent_at and m["to"] not in first:
                first[m["to"]] = m["at"]
        replies = [(first[c] - sent_at[c]) * 1000 for c in sent_at if c in first]
        hops, per_batch = await _hops(api, sent_at, first)
    progress("(w) p50 / p99 per hop (ms): " + ", ".join(
        f"{hop} {v['p50']:.1f} / {v['p99']:.1f}" if isinstance(v, dict) else f"{hop} {v}" for hop, v in hops.items()))
    per_message = _cpu_per_message(CpuMonitor.usage(cpu0, cpu2), cpu2.at - cpu0.at, len(sent_at))
    progress("(w) CPU ms per message: " + ", ".join(f"{k} {v:.2f}" for k, v in per_message.items())
             + f"; measured messages per inbound batch {per_batch:.1f}")
    return {"rate": rate, "seconds": seconds, "messages": len(sent_at), "failures": failures,
            "ack_p50_ms": percentile(acks, 50), "ack_p99_ms": percentile(acks, 99),
            "reply_p50_ms": percentile(replies, 50), "reply_p99_ms": percentile(replies, 99),
            "replied": len(replies), "hops_ms": hops, "messages_per_batch": per_batch, "cpu_ms_per_message": per_message,
            "cpu": usage}
