"""Conversations' Prometheus metrics, read from /metrics as Prometheus would: inbound items by provider and
type, outbound messages by outcome, provider errors by code class, channels by status; no ids in labels.
Scraped from both processes (the API and its worker process) and added up, as a query over instances would."""

from __future__ import annotations

import re

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from common.testing.fake_whatsapp import batch, text_message

SAMPLES = ("conversations_inbound_items_total", "conversations_outbound_messages_total",
           "conversations_provider_errors_total", "conversations_channels")


async def scrape(client, worker_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with httpx.AsyncClient(base_url=worker_url) as worker:
        pages = [await client.get("/metrics"), await worker.get("/metrics")]
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for resp in pages:
        assert resp.status_code == 200
        for family in text_string_to_metric_families(resp.text):
            for s in family.samples:
                if s.name.startswith(SAMPLES):
                    key = (s.name, frozenset(s.labels.items()))
                    samples[key] = samples.get(key, 0.0) + s.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_messages_in_and_out_and_provider_errors_are_counted(api, graph, owner, anonymous, worker_url):
    before = await scrape(anonymous, worker_url)
    channel = await api.cloud_channel()
    await api.agent(channel["id"], greeting="¡Hola!")
    number = channel["phoneNumberId"]
    await api.post_cloud(channel, batch(number, messages=[("573001230001", "Hola", None),
                                                          ("573001230001", "¿Precio?", None)]))
    greeting = await api.wait_until(lambda: [m for m in graph.sent if m["to"] == "573001230001"])
    await api.post_cloud(channel, batch(number, statuses=[(greeting[0]["id"], "delivered", "573001230001")]))
    conversation = await api.wait_until(lambda: api.conversation_of(channel["id"], "573001230001"))
    graph.fail_next(131047)  # outside the 24 h window: refused for good
    reply = await owner.post(f"/api/platform/operations/conversations/{conversation['id']}/messages",
                             json={"text": "¿Sigue ahí?"})
    assert reply.status_code == 202

    def delta(name: str, **labels: str) -> float:
        return value(now, name, **labels) - value(before, name, **labels)

    async def counted() -> bool:
        nonlocal now
        now = await scrape(anonymous, worker_url)
        return (delta("conversations_inbound_items_total", provider="cloud_api", kind="message", type="text") >= 2
                and delta("conversations_inbound_items_total", provider="cloud_api", kind="status",
                          type="delivered") >= 1
                and delta("conversations_outbound_messages_total", provider="cloud_api", outcome="sent") >= 1
                and delta("conversations_outbound_messages_total", provider="cloud_api", outcome="failed") >= 1)

    now: dict = {}
    await api.wait_until(counted)
    assert delta("conversations_inbound_items_total", provider="cloud_api", kind="message", type="text") == 2
    assert delta("conversations_outbound_messages_total", provider="cloud_api", outcome="failed") == 1
    assert delta("conversations_provider_errors_total", provider="cloud_api", code_class="4xx") == 1


async def test_channels_by_status_follow_the_database(api, anonymous, worker_url):
    await api.cloud_channel()
    await api.evolution_channel()

    async def agrees() -> bool:
        async with api.db.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT type, status, count(*) FROM channels WHERE deleted_at IS NULL GROUP BY 1, 2"))).all()
        in_db = {(t, s): float(n) for t, s, n in rows}
        gauge = {(dict(labels)["type"], dict(labels)["status"]): v
                 for (name, labels), v in (await scrape(anonymous, worker_url)).items() if name == "conversations_channels"}
        return bool(in_db) and {k: v for k, v in gauge.items() if v} == in_db

    await api.wait_until(agrees)


async def test_labels_carry_no_ids_or_phone_numbers(api, anonymous, worker_url):
    channel = await api.cloud_channel()
    await api.post_cloud(channel, text_message(channel["phoneNumberId"], "573001239999", "hola"))
    await api.wait_until(lambda: api.conversation_of(channel["id"], "573001239999"))
    samples = await scrape(anonymous, worker_url)
    assert samples
    for name, labels in samples:
        for key, label in labels:
            assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}|\d{6,}", label), (name, key, label)
