"""The outbox is the source of truth: when the broker loses records it acknowledged (the embedded tansu
keeps nothing across a restart), the relay publishes them again and consumers apply each event once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from sqlalchemy.orm import DeclarativeBase

from common.config import ServiceSettings
from common.db import new_metadata
from common.events import build_event
from common.messaging import Outbox, OutboxRelay, inbox_table, outbox_table
from common.messaging.kafka import make_producer
from common.supervise import supervise
from common.testing.events import collect_events


class Base(DeclarativeBase):
    metadata = new_metadata()


OUTBOX = outbox_table(Base.metadata)
INBOX = inbox_table(Base.metadata)


@contextlib.asynccontextmanager
async def running(coro_fn, name):
    task = asyncio.create_task(supervise(name, coro_fn, first_delay=0.2, max_delay=1.0))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def relay_running(database, bootstrap, source, check_interval=0.5):
    settings = ServiceSettings(service_name=source, kafka_bootstrap_servers=bootstrap)
    producer = make_producer(settings)
    await producer.start()
    relay = OutboxRelay(database, producer, Outbox(OUTBOX, source), bootstrap=bootstrap, poll_interval=0.3,
                        check_interval=check_interval)
    try:
        async with running(relay.run, f"relay-{source}"):
            yield relay
    finally:
        await producer.stop()


async def add_events(database, outbox, count):
    sent = []
    async with database.sessionmaker() as session:
        for _ in range(count):
            tenant = uuid.uuid4()
            envelope = build_event("tenant.created", {"tenantId": tenant, "name": "E", "plan": "Pro",
                                                      "status": "ACTIVE"}, tenant_id=tenant)
            sent.append((await outbox.add(session, envelope, key=str(tenant))).id)
        await session.commit()
    return sent


async def wait_until(predicate, timeout=30.0):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


@pytest.fixture
async def database(scratch_database):
    return await scratch_database(Base.metadata, pool_size=10)


async def test_a_broker_restart_loses_nothing_and_consumers_apply_each_event_once(database, broker,
                                                                                     recording_consumer):
    source = f"losstest{uuid.uuid4().hex[:6]}"
    outbox = Outbox(OUTBOX, source)
    settings = ServiceSettings(service_name=source, kafka_bootstrap_servers=broker.bootstrap,
                               kafka_fetch_max_wait_ms=20)
    consumer, applied = recording_consumer(settings, database, INBOX, outbox.topic, name="loss")
    async with running(consumer.run, "consumer"):
        async with relay_running(database, broker.bootstrap, source) as relay:
            first = await add_events(database, outbox, 20)
            await wait_until(lambda: set(first) <= set(applied))

            # Idle: nothing is sent after the restart, the relay's end-offset check finds the loss.
            await broker.restart()
            async with collect_events(broker.bootstrap, [outbox.topic]) as seen:
                # Every partition is re-filled on its own: wait for all of them (a loss times out here).
                await wait_until(lambda: set(first) <= {e.id for e in seen.matching(lambda e: True)})

            # Busy: events keep coming across the restart; the first send lands below what was acknowledged.
            await broker.restart()
            second = await add_events(database, outbox, 10)
            await wait_until(lambda: set(second) <= set(applied))
            async with collect_events(broker.bootstrap, [outbox.topic]) as seen:
                await seen.wait_for(lambda e: e.id == first[-1], timeout=30)
            assert relay.is_leader

        # A new leader after a restart it did not see: the outbox holds more published rows than the topic.
        await broker.restart()
        async with relay_running(database, broker.bootstrap, source):
            async with collect_events(broker.bootstrap, [outbox.topic]) as seen:
                await wait_until(lambda: set(first) | set(second) <= {e.id for e in seen.matching(lambda e: True)})
            marker = await add_events(database, outbox, 1)
            await wait_until(lambda: marker[0] in applied)
    # The consumer applied every event exactly once, whatever the broker re-delivered.
    assert sorted(map(str, applied)) == sorted(map(str, first + second + marker))


async def test_batched_sends_and_idle_checks_are_not_taken_for_a_loss(database, broker):
    """tansu lists a partition's end as its last batch's start + 1: a relay that sent batches of many
    records must not take that for a loss (it would re-publish everything again and again)."""
    from common.messaging.relay import BROKER_LOSSES

    source = f"losstest{uuid.uuid4().hex[:6]}"
    outbox = Outbox(OUTBOX, source)
    async with relay_running(database, broker.bootstrap, source) as relay:
        checks = 0
        check_idle = relay._check_idle

        async def counted() -> None:
            nonlocal checks
            await check_idle()
            checks += 1

        relay._check_idle = counted
        sent = await add_events(database, outbox, 200)  # one commit: the relay sends them in one pass
        await wait_until(lambda: checks >= 3)  # idle checks after the batch was acknowledged
        async with collect_events(broker.bootstrap, [outbox.topic]) as seen:
            await seen.wait_for(lambda e: e.id == sent[-1])
            marker = await add_events(database, outbox, 1)
            await seen.wait_for(lambda e: e.id == marker[0])
            ids = [e.id for e in seen.deliveries(lambda e: True)]
    assert sorted(map(str, ids)) == sorted(map(str, sent + marker))  # each once: nothing re-published
    # A new leader counts the records the partitions really hold (not tansu's listed ends): no loss.
    async with relay_running(database, broker.bootstrap, source) as relay:
        await wait_until(lambda: relay.floor)  # its start check found the baseline
    assert BROKER_LOSSES.labels(source)._value.get() == 0


async def test_a_restart_re_sends_what_the_broker_held_not_what_the_new_one_got(database, broker):
    """Counted: the rows re-sent after each restart are the ones the lost log held -- not the rows the pass
    that noticed the loss had just placed in the new log, nor any row twice."""
    from common.messaging.relay import REPUBLISHED

    source = f"losstest{uuid.uuid4().hex[:6]}"
    outbox = Outbox(OUTBOX, source)
    resent = REPUBLISHED.labels(source)
    # Idle checks far apart: the restart is noticed by the sends that follow it.
    async with relay_running(database, broker.bootstrap, source, check_interval=600) as relay:
        first = await add_events(database, outbox, 30)
        async with collect_events(broker.bootstrap, [outbox.topic]) as seen:
            await seen.wait_for(lambda e: e.id == first[-1])
        await wait_until(lambda: sum(len(p.offsets) for p in relay.placements.values()) == 30)

        await broker.restart()
        second = await add_events(database, outbox, 12)  # one commit: one pass into the new, empty log
        async with collect_events(broker.bootstrap, [outbox.topic]) as seen:
            await seen.wait_for(lambda e: {*first, *second} <= {x.id for x in seen.matching(lambda x: True)})
            marker = await add_events(database, outbox, 1)
            await seen.wait_for(lambda e: e.id == marker[0])
            ids = [e.id for e in seen.matching(lambda e: True)]
        # The 30 the lost log held; of the detecting pass, only rows of a partition that did not show the new
        # log yet (placed there, or maybe by the broker before it died) may go again: never all 12.
        once = resent._value.get()
        assert 30 <= once < 30 + 12
        assert set(ids) == set(first + second + marker)

        # The next restart loses all 43 the new log held; found while idle this time.
        await broker.restart()
        relay.check_interval = 0.5
        await add_events(database, outbox, 0)
        relay._wake.set()
        await wait_until(lambda: resent._value.get() >= once + 43)
        async with collect_events(broker.bootstrap, [outbox.topic]) as seen:
            await seen.wait_for(lambda e: e.id == marker[0])
    assert resent._value.get() == once + 43


def test_placements_give_the_rows_past_the_new_end():
    """A real cluster's unclean leader election truncates a partition: only its tail is sent again."""
    from common.messaging.placements import Placements

    placed = Placements(baseline=100)
    placed.add([(100 + i, 1000 + i) for i in range(50)])
    assert placed.cut(140) == ([1040 + i for i in range(10)], False)  # the tail only
    assert placed.cut(120)[0] == [1020 + i for i in range(20)]
    placed.add([(120, 5000)])
    assert placed.kept()[-1] == 5000
    assert placed.cut(90) == ([1000 + i for i in range(20)] + [5000], True)  # below this leadership: unknown rows

    small = Placements(limit=10)
    small.add([(i, i) for i in range(12)])
    assert len(small.kept()) < 12 and small.baseline > 0  # the oldest forgotten: a loss there is "unknown"
    assert small.cut(0)[1] is True


def test_a_pass_placed_over_offsets_the_broker_had_acknowledged_is_sent_again():
    """Seen in the chaos test: right after a restart, tansu acknowledged a batch at offset 5 of a partition it had
    acknowledged up to 6 (two racing writes), and served 5 and 6 from the older batch: those rows of the pass are
    not in the log and must go again. A pass that began an empty log (offset 0) is in it."""
    from collections import namedtuple

    from common.messaging.placements import Placements

    placed = namedtuple("placed", "topic partition offset")
    topic = "platform.overlap.events"
    relay = OutboxRelay(None, None, Outbox(OUTBOX, "overlap"), bootstrap="127.0.0.1:1")
    relay.placements[(topic, 2)] = Placements(baseline=0)  # empty when its leadership began (`_check_at_start`)
    relay._note_acknowledged([(seq, placed(topic, 2, seq)) for seq in range(7)])  # offsets 0..6
    relay._note_acknowledged([(100 + i, placed(topic, 2, 5 + i)) for i in range(3)])  # 5..7: back to 5
    assert relay._lost[topic] == {0, 1, 2, 3, 4, 5, 6, 100, 101, 102}

    restarted = OutboxRelay(None, None, Outbox(OUTBOX, "restarted"), bootstrap="127.0.0.1:1")
    restarted.placements[(topic, 1)] = Placements(baseline=0)
    restarted._note_acknowledged([(seq, placed(topic, 1, seq)) for seq in range(7)])
    restarted._note_acknowledged([(200 + i, placed(topic, 1, i)) for i in range(3)])  # a new, empty log
    assert restarted._lost[topic] == set(range(7))
