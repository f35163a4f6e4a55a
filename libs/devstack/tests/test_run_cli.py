"""`plataforma-run` end to end: fake `auth` package + fake root, progress, summary, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import httpx
import psutil
from fake_root import make_fake_packages, make_fake_root, pythonpath

from devstack._proc import free_port


async def test_run_cli_starts_prints_summary_and_stops_on_sigint(tmp_path: Path):
    root = make_fake_root(tmp_path / "root", ["auth"])
    pkgs = make_fake_packages(tmp_path / "pkgs", ["auth"])
    data_dir = Path(tempfile.mkdtemp(prefix="ds-"))
    gw_port, auth_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update(
        PLATAFORMA_ROOT=str(root), PYTHONPATH=pythonpath(pkgs), DATA_DIR=str(data_dir),
        GATEWAY_PORT=str(gw_port), AUTH_PORT=str(auth_port), PLATFORM_OWNER_PASSWORD="S3cret-pass-123",
    )  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "devstack.run", "auth",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out: list[str] = []
    try:
        async with asyncio.timeout(60):
            while True:
                line = (await proc.stdout.readline()).decode()
                assert line, "".join(out)
                out.append(line)
                if "Ctrl-C to stop" in line:
                    break
        text = "".join(out)
        assert "postgres ready" in text and "kafka ready" in text and "auth: ready" in text
        assert f"http://127.0.0.1:{gw_port}/api/docs" in text
        assert "S3cret-pass-123" in text and "owner@plataforma.local" in text
        assert str(data_dir) in text
        async with httpx.AsyncClient(trust_env=False) as c:
            r = await c.get(f"http://127.0.0.1:{gw_port}/api/auth/x")
            assert r.json()["service"] == "auth"
        assert json.loads((data_dir / "status.json").read_text())["auth"]["state"] == "up"

        # A service that dies is started again, and `make run` says so
        [listener] = [c for c in psutil.net_connections("tcp") if c.laddr.port == auth_port and c.status == "LISTEN"]
        os.kill(listener.pid, signal.SIGKILL)
        async with asyncio.timeout(60):
            while "auth: back" not in "".join(out):
                out.append((await proc.stdout.readline()).decode())
        assert "WARNING: auth exited with code -9" in "".join(out)
        async with httpx.AsyncClient(trust_env=False) as c:
            assert (await c.get(f"http://127.0.0.1:{gw_port}/api/auth/x")).json()["service"] == "auth"
        status = json.loads((data_dir / "status.json").read_text())["auth"]
        assert status["state"] == "up" and status["restarts"] == 1 and status["last_exit"] == -9
        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, rest.decode()
        assert "stopped" in rest.decode().splitlines()[-1]
        assert not (data_dir / "postgres" / "postmaster.pid").exists()
        assert (data_dir / "logs" / "auth.log").exists()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
