"""The worker process as a child of the API (CONVERSATIONS_WORKERS=process): started with this process's
settings, ended with it (SIGTERM at shutdown; PR_SET_PDEATHSIG should the API die), started again with
backoff (`supervise`) whenever it exits; its liveness is one of the API's `/readyz` checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys

import aiohttp

from conversations.config import Settings

logger = logging.getLogger("conversations.worker_process")
STOP_SECONDS = 10.0  # a SIGTERMed worker finishes its batch in this time, or is killed


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """This process's environment with `settings` written over it: the child reads the same Settings (tests
    and embedders build them in code, not from the environment)."""
    env = dict(os.environ)
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[name.upper()] = value if isinstance(value, str) else json.dumps(value)
    return env


class WorkerProcess:
    def __init__(self, settings: Settings) -> None:
        self.port = settings.conversations_worker_port or free_port()
        self.env = settings_env(settings) | {"CONVERSATIONS_WORKER_PORT": str(self.port)}
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None

    async def run(self) -> None:
        """Start the worker and wait for it; meant to run under `supervise`, which starts it again."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "conversations.worker", "--parent", str(os.getpid()),
            env=self.env, stdin=asyncio.subprocess.DEVNULL)
        logger.info("worker process %d started", self.process.pid)
        try:
            code = await self.process.wait()
        finally:
            await self._stop()
        raise RuntimeError(f"worker process {self.process.pid} exited with code {code}")

    async def _stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.shield(asyncio.wait_for(process.wait(), STOP_SECONDS))
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def check(self) -> None:
        """Readiness: the worker answers its /healthz."""
        if self.process is None or self.process.returncode is not None:
            raise RuntimeError("the worker process is not running (starting again)")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as client, \
                client.get(f"{self.url}/healthz") as resp:
            if resp.status != 200:
                raise RuntimeError(f"the worker process's /healthz answered {resp.status}")
