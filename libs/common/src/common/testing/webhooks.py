"""Test helpers around the webhook dispatcher's API: what a subscriber got, and a delivery's state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

WEBHOOKS_API = "/api/platform/webhooks"


def ids_of(hook: Any) -> list[str]:
    """The `webhook-id`s a receiver hook got, in arrival order (verification challenges excluded)."""
    return [r.headers["webhook-id"] for r in hook.events()]


async def deliveries_of(client: httpx.AsyncClient, endpoint_id: str, **params: Any) -> list[dict[str, Any]]:
    resp = await client.get(f"{WEBHOOKS_API}/{endpoint_id}/deliveries", params={"limit": 100} | params)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


async def wait_delivery(client: httpx.AsyncClient, endpoint_id: str, event_id: Any,
                        predicate: Callable[[dict[str, Any]], bool] = lambda d: True,
                        timeout: float = 15.0) -> dict[str, Any]:
    """Poll the API until the delivery of `event_id` to the endpoint satisfies `predicate`."""
    async with asyncio.timeout(timeout):
        while True:
            found = [d for d in await deliveries_of(client, endpoint_id) if d["eventId"] == str(event_id)]
            if found and predicate(found[0]):
                return found[0]
            await asyncio.sleep(0.05)


async def wait_ready(url: str, timeout: float = 60.0) -> None:
    """Until the dispatcher at `url` answers /readyz 200: database, broker, its consumer's partitions
    assigned and its delivery worker listening (a consumer-group join takes seconds against tansu)."""
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        async with asyncio.timeout(timeout):
            while (await client.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.1)
