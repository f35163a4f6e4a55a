"""Small process / network helpers shared by the devstack modules (internal)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


def repo_root() -> Path:
    """The monorepo root: ``$PLATAFORMA_ROOT``, else the workspace holding this package, else the
    first parent of the cwd with ``services/`` and ``libs/``."""
    env = os.environ.get("PLATAFORMA_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for candidate in [*here.parents, Path.cwd(), *Path.cwd().parents]:
        if (candidate / "libs" / "devstack").is_dir() and (candidate / "services").is_dir():
            return candidate
    return Path.cwd()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str],
    log_path: Path | None = None,
    cwd: Path | None = None,
    header: str | None = None,
    stdin: int = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start a child in its own session (Ctrl-C in the terminal reaches only the supervisor, which
    then stops children in order). Output is appended to ``log_path``. When started from the main
    thread the child also gets SIGTERM if the parent dies (PR_SET_PDEATHSIG is per thread)."""
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")
        if header:
            out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {header} =====\n".encode())
            out.flush()
    else:
        out = subprocess.DEVNULL
    preexec = _set_pdeathsig if threading.current_thread() is threading.main_thread() else None
    try:
        return subprocess.Popen(
            [str(a) for a in argv],
            env=dict(env),
            cwd=str(cwd) if cwd else None,
            stdin=stdin,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )
    finally:
        if log_path is not None:
            out.close()


async def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> int | None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.to_thread(proc.wait)
    return proc.returncode


async def all_or_none(coros: Sequence[Coroutine[Any, Any, Any]]) -> None:
    """Run concurrently; the first failure cancels the others (waited for) and is raised."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def kill_now(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


@dataclass(kw_only=True)
class ChildProcess:
    """A server this stack may have started: `process` is None for an outside one (nothing to stop)."""

    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None

    async def stop(self, timeout: float = 5.0) -> None:
        await terminate(self.process, timeout)

    def kill(self) -> None:
        kill_now(self.process)

    async def wait_ready(self, ready: Awaitable[None], failure: str = "") -> None:
        """Wait for `ready`; when it fails (or is cancelled) stop the process, the error carrying its log's end."""
        try:
            await ready
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, Exception):
                raise RuntimeError(f"{failure}{exc}\n{tail(self.log_path, 20)}") from exc
            raise


def log_size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def tail(path: Path | None, lines: int = 40, start: int = 0) -> str:
    """The last ``lines`` lines of ``path`` written after byte offset ``start``."""
    if path is None or not path.exists():
        return "(no log)"
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(start, size - 64 * 1024))
        data = f.read().decode("utf-8", "replace")
    return "\n".join(data.splitlines()[-lines:]) or "(empty log)"


async def wait_tcp(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until ``host:port`` accepts a connection (fails early if ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before listening on {port}")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        except (TimeoutError, OSError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{host}:{port} not listening after {timeout:.0f}s") from None
            await asyncio.sleep(0.05)
