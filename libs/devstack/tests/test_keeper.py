"""`make run` stays up: whatever dies (a service, the gateway, the broker, PostgreSQL) is started again
by the keeper, and the platform answers again."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import httpx
from fake_root import make_fake_root, pythonpath

from devstack._proc import free_port
from devstack.kafka import wait_for_kafka
from devstack.keeper import Keeper
from devstack.services import ServiceSpec
from devstack.supervisor import Stack


async def wait_until(predicate, timeout=60.0):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.1)


async def test_keeper_restarts_service_gateway_broker_and_postgres(tmp_path: Path):
    root = make_fake_root(tmp_path / "root", ["auth", "leads"])
    registry = [ServiceSpec("auth", "devstack_demo", free_port(), "auth", ("/api/auth/*",)),
                ServiceSpec("leads", "devstack_demo", free_port(), "leads", ("/api/platform/leads*",))]
    data_dir = Path(tempfile.mkdtemp(prefix="keep-"))  # short: the socket lives in it
    env = {**os.environ, "PYTHONPATH": pythonpath()}
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        env.pop(name, None)
    lines: list[str] = []
    stack = Stack(data_dir, env=env, root=root, registry=registry, progress=lines.append)
    keeper_task = None
    try:
        await stack.start(gateway_port=free_port(), kafka_port=free_port())
        keeper = Keeper(stack, interval=0.1, first_delay=0.1, progress=lines.append)
        keeper_task = asyncio.create_task(keeper.run())

        async def killed_and_back(name, kill):
            before = keeper.status[name].restarts
            kill()
            await wait_until(lambda: keeper.status[name].restarts == before + 1
                             and keeper.status[name].state == "up")

        # a service: SIGKILL, back on the same port and ready
        await killed_and_back("leads", lambda: stack.services["leads"].process.send_signal(signal.SIGKILL))
        assert keeper.status["leads"].last_exit == -signal.SIGKILL
        # it took over from its spare (imported ahead), and a new spare waits for the next time
        assert "--spare" in stack.services["leads"].process.args
        assert stack._standby["leads"][0].poll() is None
        async with httpx.AsyncClient(trust_env=False) as c:
            assert (await c.get(f"{stack.services['leads'].url}/readyz")).status_code == 200
        assert any("WARNING: leads exited with code -9" in line for line in lines)

        # the gateway
        await killed_and_back("gateway", lambda: stack.gateway.process.send_signal(signal.SIGKILL))
        async with httpx.AsyncClient(base_url=stack.gateway.url, trust_env=False) as c:
            assert (await c.get("/api/auth/demo/env")).json()["service"] == "auth"

        # the broker: same address again
        bootstrap = stack.bootstrap_servers
        await killed_and_back("kafka", lambda: stack.broker.process.send_signal(signal.SIGKILL))
        assert stack.bootstrap_servers == bootstrap
        await wait_for_kafka(bootstrap, timeout=10)

        # PostgreSQL: its postmaster killed; the services' readiness follows it back
        pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        await killed_and_back("postgres", lambda: os.kill(pid, signal.SIGKILL))
        conn = await stack.postgres.connect("leads")
        assert await conn.fetchval("SELECT count(*) FROM demo_items") == 0
        await conn.close()
        async with httpx.AsyncClient(trust_env=False) as c:
            assert (await c.get(f"{stack.services['leads'].url}/readyz")).status_code == 200

        status = json.loads((data_dir / "status.json").read_text())
        assert {n: s["state"] for n, s in status.items()} == dict.fromkeys(
            ["postgres", "kafka", "gateway", "auth", "leads"], "up")
        assert status["leads"]["restarts"] == 1 and status["auth"]["restarts"] == 0
    finally:
        if keeper_task is not None:
            keeper_task.cancel()
            await asyncio.gather(keeper_task, return_exceptions=True)
        await stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
