"""Run an ASGI app for real (uvicorn, lifespan and all) inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any, Self

import uvicorn
from aiohttp import web
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_aiohttp(app: web.Application, host: str, ssl_context: ssl.SSLContext | None = None,
                        port: int = 0) -> tuple[web.AppRunner, int]:
    """Start an aiohttp app (a fake outside system) on `port` (0: a free one) of `host`; stop with
    `runner.cleanup()`."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    server: Any = site._server
    assert server is not None and server.sockets
    return runner, server.sockets[0].getsockname()[1]


class FakeServer:
    """An outside system (n8n, Stripe, Meta, Evolution, a webhook subscriber) faked as an aiohttp server.

    A fake adds its routes in `add_routes(app)`; `async with Fake(...) as fake:` (or start()/stop()) serves it on
    `port` (0: a free one, known after start). `wait_for(predicate)` waits until the fake has seen what a
    test expects; handlers call `_notify()` after each change."""

    host = "127.0.0.1"
    port = 0
    client_max_size = 4 * 1024 * 1024
    _runner: web.AppRunner | None = None
    _changed: asyncio.Condition | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def ssl_context(self) -> ssl.SSLContext | None:
        return None

    async def start(self) -> None:
        app = web.Application(client_max_size=self.client_max_size)
        self.add_routes(app)
        self._runner, self.port = await start_aiohttp(app, self.host, self.ssl_context(), self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        changed = self._condition()
        async with asyncio.timeout(timeout), changed:
            await changed.wait_for(predicate)

    async def _notify(self) -> None:
        changed = self._condition()
        async with changed:
            changed.notify_all()


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override] # leave pytest's signal handlers alone
        yield


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    """Yields the base URL; the app's lifespan (relay, consumers, workers) runs while inside."""
    port = port or free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning",
                                    access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped during start-up")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
