"""The one aiohttp starter every fake outside system uses (common.testing.servers.FakeServer)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from aiohttp import web

from common.errors import NotFound, found
from common.testing.servers import FakeServer, free_port


class Echo(FakeServer):
    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.seen: list[str] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{name}", self._hello)

    async def _hello(self, request: web.Request) -> web.Response:
        self.seen.append(request.match_info["name"])
        await self._notify()
        return web.json_response({"hello": request.match_info["name"]})


async def test_serves_while_inside_and_wakes_waiters():
    async with Echo() as echo:
        assert echo.port != 0
        waiter = asyncio.create_task(echo.wait_for(lambda: "ana" in echo.seen))
        async with httpx.AsyncClient(base_url=echo.url) as client:
            assert (await client.get("/ana")).json() == {"hello": "ana"}
        await waiter
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"{echo.url}/gone")


async def test_a_port_chosen_before_start_is_kept():
    port = free_port()
    async with Echo(port) as echo:
        assert echo.url == f"http://127.0.0.1:{port}"
    await echo.stop()  # stopping twice is harmless


async def test_wait_for_times_out_when_nothing_comes():
    async with Echo() as echo:
        with pytest.raises(TimeoutError):
            await echo.wait_for(lambda: bool(echo.seen), timeout=0.2)


def test_found_returns_the_value_or_raises_not_found():
    assert found(0, "zero is a value") == 0
    with pytest.raises(NotFound) as caught:
        found(None, "Widget 7 not found")
    assert caught.value.status == 404 and caught.value.detail == "Widget 7 not found"
