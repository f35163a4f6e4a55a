"""The local webhook receiver, in a process of its own so it never competes with the measuring loop.

Plain HTTP on 127.0.0.1, aiohttp (uvloop when installed), no access log. Every POST is answered 200,
except:

- a verification challenge (`"event": "webhook.verification"`) is echoed as `{"challenge": ...}`;
- paths under `/hang/` wait (up to `HANG_SECONDS`, or until `release()`) before answering.

Each request is recorded in memory as `(path, webhook-id, received_at, tenant_id, event_timestamp)`,
grouped by the first path segment (`/tp/1` -> group `tp`); `received_at` is `time.time()` when the
handler starts. Only groups in `PARSE_GROUPS` have their body parsed (for `data.tenantId`, which links a
webhook back to the API call that caused it, and the envelope's `timestamp`). The parent reads counts and records over a small control API under
`/_ctl/` (counts are cheap to poll; records are fetched once per scenario).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import signal
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web

HANG_SECONDS = 60.0
Record = tuple[str, str | None, float, str | None, str | None]  # path, webhook-id, at, tenant id, timestamp
PARSE_GROUPS = frozenset({"lat"})
_VERIFICATION = b'"webhook.verification"'


class _State:
    def __init__(self) -> None:
        self.records: dict[str, list[Record]] = defaultdict(list)
        self.release = asyncio.Event()
        self.hanging = 0


def _app(state: _State) -> web.Application:
    ok = b"ok"

    async def hook(request: web.Request) -> web.StreamResponse:
        t = time.time()
        body = await request.read()
        if _VERIFICATION in body:
            try:
                challenge = orjson.loads(body)["data"]["challenge"]
            except (ValueError, KeyError, TypeError):
                return web.Response(status=400, text="no challenge")
            return web.Response(body=orjson.dumps({"challenge": challenge}), content_type="application/json")
        path = request.path
        group = path.split("/", 2)[1]
        tenant_id = timestamp = None
        if group in PARSE_GROUPS:
            with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                doc = orjson.loads(body)
                timestamp = doc.get("timestamp")
                tenant_id = doc["data"].get("tenantId")
        state.records[group].append((path, request.headers.get("webhook-id"), t, tenant_id, timestamp))
        if group == "hang" and not state.release.is_set():
            state.hanging += 1
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state.release.wait(), HANG_SECONDS)
            finally:
                state.hanging -= 1
        return web.Response(body=ok)

    async def counts(request: web.Request) -> web.Response:
        data = {g: len(r) for g, r in state.records.items()}
        data["_hanging"] = state.hanging
        return web.Response(body=orjson.dumps(data), content_type="application/json")

    async def records(request: web.Request) -> web.Response:
        group = request.match_info["group"]
        return web.Response(body=orjson.dumps(state.records.get(group, [])), content_type="application/json")

    async def reset(request: web.Request) -> web.Response:
        group = request.query.get("group")
        if group:
            state.records.pop(group, None)
        else:
            state.records.clear()
        return web.Response(body=ok)

    async def release(request: web.Request) -> web.Response:
        state.release.set()
        return web.Response(body=ok)

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_get("/_ctl/counts", counts)
    app.router.add_get("/_ctl/records/{group}", records)
    app.router.add_post("/_ctl/reset", reset)
    app.router.add_post("/_ctl/release", release)
    app.router.add_post("/{tail:.*}", hook)
    return app


async def _serve(port: int, ready: multiprocessing.connection.Connection) -> None:
    state = _State()
    runner = web.AppRunner(_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=2048, reuse_address=True)
    await site.start()
    ready.send(port)
    ready.close()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    state.release.set()
    await runner.cleanup()


def _main(port: int, ready: multiprocessing.connection.Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it terminates us
    try:
        import uvloop

        uvloop.run(_serve(port, ready))
    except ImportError:
        asyncio.run(_serve(port, ready))


@dataclass
class Receiver:
    """Handle of the receiver process, used by the parent (async methods need a running loop)."""

    port: int
    process: multiprocessing.process.BaseProcess
    _session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    @classmethod
    def start(cls, port: int, timeout: float = 20.0) -> Receiver:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_main, args=(port, child), name="bench-receiver", daemon=True)
        proc.start()
        child.close()
        if not parent.poll(timeout):
            proc.kill()
            raise RuntimeError(f"the receiver did not start on 127.0.0.1:{port} within {timeout:.0f}s")
        try:
            parent.recv()
        except EOFError:
            proc.join(5)
            raise RuntimeError(f"the receiver exited while starting (exit code {proc.exitcode})") from None
        finally:
            parent.close()
        return cls(port, proc)

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def counts(self) -> dict[str, int]:
        async with self.session.get(self.url("/_ctl/counts")) as resp:
            return orjson.loads(await resp.read())

    async def count(self, group: str) -> int:
        return (await self.counts()).get(group, 0)

    async def records(self, group: str) -> list[Record]:
        async with self.session.get(self.url(f"/_ctl/records/{group}")) as resp:
            return [tuple(r) for r in orjson.loads(await resp.read())]  # type: ignore[misc]

    async def reset(self, group: str | None = None) -> None:
        params: Any = {"group": group} if group else {}
        async with self.session.post(self.url("/_ctl/reset"), params=params) as resp:
            await resp.read()

    async def release_hangs(self) -> None:
        async with self.session.post(self.url("/_ctl/release")) as resp:
            await resp.read()

    async def wait_count(self, group: str, n: int, *, timeout: float, interval: float = 0.01) -> int:
        """Poll until `group` holds at least `n` records or `timeout` passes; returns the last count."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got = await self.count(group)
            if got >= n or loop.time() >= deadline:
                return got
            await asyncio.sleep(interval)
