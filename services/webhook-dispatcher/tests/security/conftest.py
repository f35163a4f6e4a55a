"""Fixtures for the SSRF tests: a network guard (no traffic ever leaves loopback) and local receivers."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme
from aiohttp import web

RECEIVER_NAME = "receiver.test"


@dataclass
class NetworkGuard:
    """Connection attempts to non-loopback addresses, refused before any packet is sent."""

    refused: list[tuple[str, int]] = field(default_factory=list)


def _is_loopback(host: Any) -> bool:
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
async def network_guard(monkeypatch: pytest.MonkeyPatch) -> NetworkGuard:
    """Make the event loop refuse (and record) every TCP connect to a non-loopback address."""
    loop = asyncio.get_running_loop()
    guard = NetworkGuard()
    real_sock_connect = loop.sock_connect
    real_create_connection = loop.create_connection

    async def sock_connect(sock: Any, address: Any) -> None:
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            guard.refused.append((str(address[0]), int(address[1])))
            raise ConnectionRefusedError(f"test network guard: no traffic to {address[0]}")
        await real_sock_connect(sock, address)

    async def create_connection(*args: Any, **kwargs: Any) -> Any:
        host = kwargs.get("host", args[1] if len(args) > 1 else None)
        if host is not None and not _is_loopback(host) and host != "localhost":
            port = kwargs.get("port", args[2] if len(args) > 2 else 0)
            guard.refused.append((str(host), int(port or 0)))
            raise ConnectionRefusedError(f"test network guard: no traffic to {host}")
        return await real_create_connection(*args, **kwargs)

    monkeypatch.setattr(loop, "sock_connect", sock_connect)
    monkeypatch.setattr(loop, "create_connection", create_connection)
    return guard


@dataclass
class TLSFiles:
    server: ssl.SSLContext
    client: ssl.SSLContext
    ca: trustme.CA
    name: str = RECEIVER_NAME


@pytest.fixture(scope="session")
def tls() -> TLSFiles:
    """A private CA and a server certificate for ``receiver.test`` and 127.0.0.1."""
    ca = trustme.CA()
    cert = ca.issue_cert(RECEIVER_NAME, "127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return TLSFiles(server=server, client=client, ca=ca)


@dataclass
class Receiver:
    """A real aiohttp server on 127.0.0.1 that records what it receives."""

    port: int
    scheme: str
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)  # (Host header, path, body)

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


StartReceiver = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def start_receiver(tls: TLSFiles) -> AsyncIterator[StartReceiver]:
    runners: list[web.AppRunner] = []

    async def start(*, https: bool = False) -> Receiver:
        receiver = Receiver(port=0, scheme="https" if https else "http")

        async def handle(request: web.Request) -> web.Response:
            receiver.requests.append((request.host, request.path_qs, await request.read()))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server if https else None)
        await site.start()
        receiver.port = runner.addresses[0][1]
        return receiver

    yield start
    for runner in runners:
        await runner.cleanup()
