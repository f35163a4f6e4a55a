"""The embedded broker's cost as its log grows: `python -m bench.broker_growth [--waves 8]`.

tansu's memory storage keeps every record until it restarts (no retention; DeleteRecords is not implemented), and
a fetch that has records to return lists every batch its partition holds. This produces waves of 1,000 batches of
32 records (600 bytes each, ~(g)'s relay batches) to one partition with a consumer group reading along, and prints
tansu's CPU per produced batch and its memory after each wave: both grow with what the broker holds.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.machine import CpuMonitor
from devstack.kafka import start_tansu

BATCHES, RECORDS, BODY = 1_000, 32, b"x" * 600


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def main(waves: int) -> None:
    broker = await start_tansu()
    assert broker.process is not None
    pid = broker.process.pid
    cpu = CpuMonitor()
    cpu.track("tansu", pid)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False, linger_ms=0)
    consumer = AIOKafkaConsumer("growth", bootstrap_servers=broker.bootstrap, group_id="growth",
                                fetch_max_wait_ms=20, auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    consumed = 0

    async def consume() -> None:
        nonlocal consumed
        while True:
            got = await consumer.getmany(timeout_ms=100)
            consumed += sum(len(records) for records in got.values())
            if got:
                await consumer.commit()

    reader = asyncio.create_task(consume())
    rows = []
    try:
        for wave in range(1, waves + 1):
            start, t0 = cpu.snapshot(), time.monotonic()
            for i in range(BATCHES):
                batch = producer.create_batch()
                for _ in range(RECORDS):
                    batch.append(key=None, value=BODY, timestamp=None)
                batch.close()
                sent = await producer.send_batch(batch, "growth", partition=0)
                if i % 50 == 0:
                    await sent
                await asyncio.sleep(0.005)  # ~150 batches/s: a steady load, not a burst
            await asyncio.sleep(0.5)
            end = cpu.snapshot()
            per_batch = CpuMonitor.usage(start, end).get("tansu", 0.0) / 100 * (end.at - start.at) * 1000 / BATCHES
            rows.append((wave * BATCHES, per_batch, _rss_mb(pid)))
            print(f"[{time.monotonic() - t0:5.1f}s] wave {wave}/{waves}: the broker holds {wave * BATCHES:,} batches "
                  f"({wave * BATCHES * RECORDS:,} records); tansu {per_batch:.2f} ms CPU per batch, "
                  f"{rows[-1][2]:.0f} MB; consumed {consumed:,}", flush=True)
    finally:
        reader.cancel()
        await consumer.stop()
        await producer.stop()
        await broker.stop()
    first, last = rows[0], rows[-1]
    print(f"\nsummary: tansu CPU per batch {first[1]:.2f} ms at {first[0]:,} batches held -> {last[1]:.2f} ms at "
          f"{last[0]:,} ({last[1] / first[1]:.1f}x); memory {first[2]:.0f} -> {last[2]:.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waves", type=int, default=8, help="waves of 1,000 batches (default 8, ~50 s)")
    asyncio.run(main(parser.parse_args().waves))
