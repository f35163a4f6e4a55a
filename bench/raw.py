"""(a) The raw limit: a bare aiokafka consumer posting the same bodies with aiohttp, 100 in flight.

No database, no signing, no recording: Kafka -> parse the id -> POST to the receiver. Measured the same
way as the dispatcher: N messages produced to a scratch topic, rate = N / (last 2xx - first record).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.kafka import Message, ensure_topic, make_producer, produce
from bench.machine import CpuMonitor, describe
from bench.receiver import Receiver

GROUP = "raw"


async def run_raw(bootstrap: str, receiver: Receiver, messages: list[Message], *, in_flight: int = 100,
                  cpu: CpuMonitor, timeout: float = 120.0,
                  progress: Callable[[str], None] = print) -> dict[str, Any]:
    n = len(messages)
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    await ensure_topic(bootstrap, topic)
    await receiver.reset(GROUP)
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        t = time.perf_counter()
        await produce(producer, topic, messages)
        progress(f"  produced {n} messages to {topic} in {time.perf_counter() - t:.1f}s")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=20, max_poll_records=500)
    await consumer.start()
    connector = aiohttp.TCPConnector(limit=in_flight, limit_per_host=0, keepalive_timeout=30)
    session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=15))
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=in_flight * 10)
    url = receiver.url("/raw/1")
    errors = 0
    done = 0
    first: float | None = None
    last = 0.0

    async def worker() -> None:
        nonlocal errors, done, last
        while (body := await queue.get()) is not None:
            msg_id = orjson.loads(body)["id"]
            headers = {"content-type": "application/json", "webhook-id": msg_id}
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status >= 300:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
            done += 1
            last = time.perf_counter()

    async def consume() -> None:
        nonlocal first
        await consumer.topics()  # fetches the cluster metadata
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            raise RuntimeError(f"no partitions for {topic}")
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        taken = 0
        while taken < n:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            for records in batches.values():
                if first is None and records:
                    first = time.perf_counter()
                for r in records:
                    await queue.put(r.value)
                taken += len(records)
        for _ in range(in_flight):
            await queue.put(None)

    cpu0 = cpu.snapshot()
    workers = [asyncio.create_task(worker()) for _ in range(in_flight)]
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(consume(), *workers)
    except TimeoutError:
        progress(f"  raw consumer: timed out after {timeout:.0f}s with {done}/{n} posted")
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await session.close()
        await consumer.stop()
    usage = CpuMonitor.usage(cpu0, cpu.snapshot())
    received = await receiver.count(GROUP)
    elapsed = (last - first) if first is not None and last > first else float("nan")
    rate = done / elapsed if elapsed == elapsed and elapsed > 0 else 0.0
    progress(f"  raw: {done} posted ({errors} errors), {received} received, {rate:,.0f}/s")
    progress(f"  raw: {describe(usage)}")
    await receiver.reset(GROUP)
    return {"messages": n, "posted": done, "errors": errors, "received": received, "seconds": elapsed,
            "rate": rate, "in_flight": in_flight, "cpu": usage}
