"""The workers run in a child process of the API (CONVERSATIONS_WORKERS=process, the default): killed, it is
started again, and what the API acknowledged meanwhile is processed; the API's /readyz reports it."""

from __future__ import annotations

import os
import signal

import httpx

from common.testing.fake_whatsapp import text_message


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def worker_pid(worker_url: str) -> int | None:
    async with httpx.AsyncClient(base_url=worker_url, timeout=2) as client:
        try:
            resp = await client.get("/healthz")
        except httpx.HTTPError:
            return None
    return resp.json()["pid"] if resp.status_code == 200 else None


async def test_a_killed_worker_is_started_again_and_processes_the_webhooks_stored_meanwhile(
        api, graph, anonymous, worker_url):
    channel = await api.cloud_channel()
    await api.agent(channel["id"], greeting="¡Hola!")
    old = await api.wait_until(lambda: worker_pid(worker_url))
    assert old != os.getpid()  # a process of its own

    os.kill(old, signal.SIGKILL)
    await api.wait_until(lambda: not running(old))
    contacts = ["573005550001", "573005550002"]
    for contact in contacts:  # acknowledged by the API while no worker runs: stored, not lost
        resp = await api.post_cloud(channel, text_message(channel["phoneNumberId"], contact, "hola"))
        assert resp.status_code == 200, resp.text
    assert await api.scalar("SELECT count(*) FROM inbound_events WHERE channel_id = :c",
                            c=channel["id"]) == len(contacts)

    new = await api.wait_until(lambda: worker_pid(worker_url), timeout=30)
    assert new != old
    # Below the API (this process) in CPU priority: when both want a CPU, acknowledgements go first.
    assert os.getpriority(os.PRIO_PROCESS, new) > os.getpriority(os.PRIO_PROCESS, os.getpid())
    for contact in contacts:  # each contact's message became a conversation, and the agent greeted it
        sent = await api.wait_until(lambda c=contact: [m for m in graph.sent if m["to"] == c], timeout=30)
        assert sent[0]["text"] == "¡Hola!"
        assert await api.conversation_of(channel["id"], contact)
    ready = await anonymous.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["worker"] == "ok"
