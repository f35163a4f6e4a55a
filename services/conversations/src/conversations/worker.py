"""`python -m conversations.worker`: the service's background loops (`conversations.workers`) in a process
of their own, so the API's event loop only authenticates, stores and answers.

Woken at once by commits in the API process (LISTEN on the workers' channels: `common.messaging.wakeup`
sends one coalesced NOTIFY when the leader is elsewhere), polling as a fallback. Serves `/healthz` and
`/metrics` (this process's own series) on CONVERSATIONS_WORKER_PORT. The service's outbox relay (and its
retention) runs here too, beside the workers that write most of its rows: the API process only acknowledges.
Started by the API as a child process (CONVERSATIONS_WORKERS=process, `--parent <pid>`: it then ends with
the API, and runs at a lower CPU priority than it, see `_lower_priority`), or alone (a Deployment of its own,
with CONVERSATIONS_WORKERS=off on the API)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
from collections.abc import Iterable
from typing import Any

import uvloop
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from common.app import Runtime, start_messaging, tune_gc
from common.db import Database
from common.messaging.wakeup import wake
from common.observability.logging import configure_logging
from common.observability.tracing import configure_tracing
from conversations.config import Settings
from conversations.events import outbox
from conversations.providers import http
from conversations.workers import WAKE_CHANNELS, start_workers

logger = logging.getLogger("conversations.worker")
_PR_SET_PDEATHSIG = 1
# Started by the API (same machine): when both want a CPU, the API's acknowledgements go first (what they
# store is processed a moment later; a webhook left waiting is a provider's timeout and retry).
NICE = 5
PING_SECONDS = 5.0  # how often the quiet LISTEN connection is checked (a dead one is reopened)


async def listen(database: Database, channels: Iterable[str]) -> None:
    """Wake this process's workers on NOTIFY from commits elsewhere; meant to run under `supervise`."""
    channels = tuple(channels)

    def on_notify(_conn: Any, _pid: int, channel: str, _payload: str) -> None:
        wake(channel, None)  # the worker leading this channel here

    async with database.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        try:
            for channel in channels:
                await raw.add_listener(channel, on_notify)
            for channel in channels:  # whatever was committed while nobody listened
                wake(channel, None)
            while True:
                await asyncio.sleep(PING_SECONDS)
                await raw.fetchval("SELECT 1")
        finally:
            with contextlib.suppress(Exception):
                for channel in channels:
                    await raw.remove_listener(channel, on_notify)
            with contextlib.suppress(Exception):
                await conn.invalidate()  # never back to the pool with listeners on it


def status_app() -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "pid": os.getpid()})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(settings: Settings) -> None:
    """Run every loop until SIGTERM or SIGINT."""
    database = Database(settings.database_url, pool_size=settings.database_pool_size)
    runtime = Runtime(settings=settings, database=database)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(status_app(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "0.0.0.0", settings.conversations_worker_port)
        await site.start()
        start_workers(runtime)
        runtime.supervise("wake-ups", lambda: listen(database, WAKE_CHANNELS))
        # The relay as `create_service_app` starts it for a service (broker connection retried in the background).
        start_messaging(runtime, outbox)
        tune_gc()
        logger.info("conversations worker started (pid %d, status on %s)", os.getpid(), site.name)
        await stop.wait()
    finally:
        await runtime.stop()
        await runner.cleanup()
        await http.close()
        await database.dispose()
        logger.info("conversations worker stopped")


def _end_with(parent: int) -> None:
    """SIGTERM when the API process that started this one dies (however it dies); and if it is already gone
    (it died before this line), end now."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        raise SystemExit(f"parent process {parent} is gone")


def _lower_priority() -> None:
    """Below the API that started it, as the scheduler sees it. Linux's autogroups (on by default) share the CPU
    between sessions first and apply a nice value only inside its session: as a child in the API's session this
    process's work counted against the API's share (a webhook waited behind a batch), and `nice` alone did not
    put it behind PostgreSQL or the broker. So: a session of its own, whose autogroup gets the same lower
    priority (where there are no autogroups, the nice value does it)."""
    with contextlib.suppress(OSError):  # already a session leader (started by hand): its own session anyway
        os.setsid()
    os.nice(NICE)
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as autogroup:
        autogroup.write(str(NICE))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m conversations.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--parent", type=int, help="end with this process (set by the API that starts it)")
    args = parser.parse_args(argv)
    if args.parent:
        _end_with(args.parent)
        _lower_priority()
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level)
    configure_tracing(settings.service_name)
    uvloop.run(serve(settings))  # the API's loop too (uvicorn's): less CPU per socket read and write


if __name__ == "__main__":
    main()
