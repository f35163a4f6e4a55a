from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import asyncpg
import httpx
import pytest
from fake_root import make_fake_root, pythonpath

from devstack._proc import free_port
from devstack.kafka import Broker
from devstack.services import ServiceSpec
from devstack.supervisor import Stack, StartupError


def _registry() -> list[ServiceSpec]:
    # names must be real ones so the shared Caddyfile routes them; the package is the demo app
    return [
        ServiceSpec("auth", "devstack_demo", free_port(), "auth", ("/api/auth/*",)),
        ServiceSpec("leads", "devstack_demo", free_port(), "leads", ("/api/platform/leads*",)),
    ]


@pytest.fixture
def fake_root(tmp_path):
    return make_fake_root(tmp_path / "root", ["auth", "leads"])


async def test_full_stack_start_stop_restart(fake_root: Path, tmp_path: Path):
    data_dir = Path(tempfile.mkdtemp(prefix="ds-"))  # short: the socket lives in it
    env = {**os.environ, "PYTHONPATH": pythonpath(), "DEMO_PASSTHROUGH": "yes"}
    env.pop("DATABASE_URL", None)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("SECRETS_ENCRYPTION_KEYS", None)
    env.pop("PLATFORM_OWNER_PASSWORD", None)
    lines: list[str] = []
    registry = _registry()
    gw_port = free_port()
    stack = Stack(data_dir, env=env, root=fake_root, registry=registry, progress=lines.append)
    try:
        await stack.start(gateway_port=gw_port)
        assert any("postgres ready" in line for line in lines) and lines[0].startswith("[")
        async with httpx.AsyncClient(base_url=stack.gateway.url, trust_env=False) as c:
            r = await c.get("/api/auth/demo/env")  # gateway -> auth (demo) -> echo
            assert r.json()["service"] == "auth"
            env_seen = (await c.get(f"{stack.services['leads'].url}/api/demo/env")).json()
            tables = (await c.get(f"{stack.services['leads'].url}/api/demo/tables")).json()
            docs = await c.get("/api/docs/openapi/leads.json")
        # started ahead (importing while PostgreSQL and the broker started), then handed its whole environment
        assert "devstack.standby" in stack.services["leads"].process.args
        assert env_seen["SERVICE_NAME"] == "leads"
        assert env_seen["DATABASE_URL"].startswith("postgresql+asyncpg://postgres@/leads?host=")
        assert env_seen["KAFKA_BOOTSTRAP_SERVERS"] == stack.bootstrap_servers
        assert env_seen["AUTH_JWKS_URL"] == (
            f"http://127.0.0.1:{registry[0].port}/api/auth/.well-known/jwks.json"
        )
        assert env_seen["PLATFORM_OWNER_EMAIL"] == "owner@plataforma.local"
        assert len(env_seen["PLATFORM_OWNER_PASSWORD"]) >= 20
        assert env_seen["DEMO_PASSTHROUGH"] == "yes"
        assert tables == ["alembic_version", "demo_items"]
        assert docs.json()["openapi"].startswith("3.1")
        secrets_file = data_dir / "secrets.env"
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        assert (data_dir / "logs" / "leads.log").read_text().count("alembic upgrade head") == 1
        first_secrets = dict(stack.secrets)
        procs = [sp.process for sp in stack.services.values()] + [stack.gateway.process, stack.broker.process]
    finally:
        await stack.stop()
    assert all(p.poll() is not None for p in procs)
    assert not (data_dir / "postgres" / "postmaster.pid").exists()

    # restart on the same DATA_DIR: same secrets, data kept, migrations are a no-op
    stack2 = Stack(data_dir, env=env, root=fake_root, registry=_registry())
    try:
        await stack2.start_infra()
        assert stack2.secrets == first_secrets
        assert await stack2.migrate("leads") is False  # at head: no migration process at all
        assert (data_dir / "logs" / "leads.log").read_text().count("alembic upgrade head") == 1
        conn = await asyncpg.connect(stack2.postgres.dsn("leads"))
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == "0001"
        await conn.close()
    finally:
        await stack2.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


async def test_crashing_service_fails_with_log_tail(fake_root: Path, tmp_path: Path, pg, broker):
    env = {**os.environ, "PYTHONPATH": pythonpath()}
    stack = Stack(tmp_path / "data", env=env, root=fake_root, registry=_registry(),
                  extra_env={"DEMO_CRASH_ON_START": "1"})  # fmt: skip
    stack.postgres, stack.broker = pg, broker  # shared: stop() leaves them running
    try:
        with pytest.raises(StartupError, match="crashing on purpose") as info:
            await stack.start_services(["auth"])
        assert "exited with code" in str(info.value)
    finally:
        await stack.stop()
    assert broker.process.poll() is None
    conn = await pg.connect()
    await conn.close()


async def test_missing_alembic_ini_and_busy_port(tmp_path: Path, pg, broker):
    root = make_fake_root(tmp_path / "root", ["leads"])
    registry = _registry()
    stack = Stack(
        tmp_path / "data", env={**os.environ, "PYTHONPATH": pythonpath()}, root=root, registry=registry
    )
    stack.postgres, stack.broker = pg, broker
    with pytest.raises(StartupError, match="alembic.ini not found"):
        await stack.start_services(["auth"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(StartupError, match="already in use"):
            await stack.start_services(["leads"], ports={"leads": s.getsockname()[1]})
    await stack.stop()


def test_a_service_taking_a_replica_id_gets_one_per_port_the_same_on_every_restart(tmp_path: Path):
    # The dispatcher takes back its own leases after a restart under the same id; two live processes never
    # share one (no two listen on one port). A service without `replica_id_var` gets none; a set one wins.
    dispatcher = ServiceSpec("webhook-dispatcher", "devstack_demo", 8107, "webhook_dispatcher", ("/x*",),
                             replica_id_var="WEBHOOK_REPLICA_ID")
    leads = ServiceSpec("leads", "devstack_demo", 8104, "leads", ("/api/platform/leads*",))

    def stack(env: dict[str, str]) -> Stack:
        s = Stack(tmp_path / "data", env=env, root=tmp_path, registry=[dispatcher, leads])
        s.broker = Broker(process=None, bootstrap="127.0.0.1:9")
        s.database_urls = {"webhook-dispatcher": "postgresql://x/a", "leads": "postgresql://x/b"}
        return s

    first = stack({}).service_env("webhook-dispatcher", 18107)["WEBHOOK_REPLICA_ID"]
    assert first == f"{socket.gethostname()}:18107"
    assert stack({}).service_env("webhook-dispatcher", 18107)["WEBHOOK_REPLICA_ID"] == first  # a restart
    assert stack({}).service_env("webhook-dispatcher", 28107)["WEBHOOK_REPLICA_ID"] != first  # another stack
    assert "WEBHOOK_REPLICA_ID" not in stack({}).service_env("leads", 18104)
    assert stack({"WEBHOOK_REPLICA_ID": "pod-7"}).service_env("webhook-dispatcher", 18107)["WEBHOOK_REPLICA_ID"] == "pod-7"


def test_services_on_the_embedded_broker_get_one_partition_and_a_short_session_unless_set(tmp_path: Path):
    # One process per service: one partition spreads as much as three, and an idle consumer's fetch costs tansu
    # less the fewer partitions it names. An external cluster keeps the services' own defaults.
    leads = ServiceSpec("leads", "devstack_demo", 8104, "leads", ("/api/platform/leads*",))

    def env(process: object, given: dict[str, str]) -> dict[str, str]:
        s = Stack(tmp_path / "data", env=given, root=tmp_path, registry=[leads])
        s.broker = Broker(process=process, bootstrap="127.0.0.1:9")  # type: ignore[arg-type]
        s.database_urls = {"leads": "postgresql://x/b"}
        return s.service_env("leads", 18104)

    embedded = env(object(), {})
    assert (embedded["KAFKA_TOPIC_PARTITIONS"], embedded["KAFKA_SESSION_TIMEOUT_MS"]) == ("1", "1000")
    assert env(object(), {"KAFKA_TOPIC_PARTITIONS": "6"})["KAFKA_TOPIC_PARTITIONS"] == "6"
    external = env(None, {})
    assert "KAFKA_TOPIC_PARTITIONS" not in external and "KAFKA_SESSION_TIMEOUT_MS" not in external
