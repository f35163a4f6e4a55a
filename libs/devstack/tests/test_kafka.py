from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devstack.kafka import Broker, start_kafka, start_tansu, wait_for_kafka


async def test_tansu_produce_consume_round_trip(broker: Broker):
    assert broker.embedded and broker.bootstrap.startswith("127.0.0.1:")
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=False, linger_ms=1
    )
    await producer.start()
    try:
        await producer.send_and_wait("devstack.test", b'{"hello": 1}', key=b"k1", headers=[("event", b"x")])
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        "devstack.test",
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        group_id=None,
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), 10)
    finally:
        await consumer.stop()
    assert (msg.key, msg.value, msg.headers) == (b"k1", b'{"hello": 1}', (("event", b"x"),))


async def test_external_bootstrap_is_used_as_is(broker: Broker):
    ext = await start_kafka({"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap})
    assert ext.bootstrap == broker.bootstrap and not ext.embedded
    await ext.stop()  # no-op
    await wait_for_kafka(broker.bootstrap, timeout=5)


async def test_stop_and_port_in_use(broker: Broker):
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    with pytest.raises(RuntimeError, match="in use"):
        await start_tansu(port)
    other = await start_tansu()
    await other.stop()
    assert other.process.returncode is not None
    with pytest.raises(TimeoutError):
        await wait_for_kafka(other.bootstrap, timeout=0.5)
