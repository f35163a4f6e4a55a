"""A platform of its own for chaos tests: `make run` (`devstack.run`) in its own process with its own
DATA_DIR -- embedded PostgreSQL and broker, auth + tenants + webhook-dispatcher, the gateway -- and a
verified HTTPS subscriber of `tenant.created`; parts are SIGKILLed by pid as an operator would.

The short test runs in `make test`; the long ones (the issue's burst with each kill) only when
CHAOS_FULL=1 (`make test-chaos`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx
import orjson
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from common.testing.fixtures import server_fixture
from common.testing.receiver import webhook_receiver
from common.testing.servers import free_port

OWNER_EMAIL, OWNER_PASSWORD = "owner@chaos.local", "Chaos-Owner-Passw0rd"
NAMES = ["auth", "tenants", "webhook-dispatcher"]


def pytest_collection_modifyitems(config, items):
    if os.environ.get("CHAOS_FULL") == "1":
        return
    skip = pytest.mark.skip(reason="long chaos run: `make test-chaos` (CHAOS_FULL=1)")
    for item in items:
        if "chaos_full" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    config.addinivalue_line("markers", "chaos_full: long chaos run, only with CHAOS_FULL=1")


RECOVERY_BAR = 10.0  # seconds from a kill to /readyz 200 and events flowing again (issue 14)


@dataclass(frozen=True)
class Recovery:
    back: float  # kill -> `make run` reports the part up (for a service: its /readyz answered 200)
    flowing: float  # kill -> a create sent after it reached the subscriber

    def __str__(self) -> str:
        worst = max(self.back, self.flowing)
        return (f"back in {self.back:.1f}s, events flowing in {self.flowing:.1f}s "
                f"({'<=' if worst <= RECOVERY_BAR else 'OVER'} {RECOVERY_BAR:.0f}s)")


@dataclass
class BurstResult:
    created: list[str] = field(default_factory=list)  # tenant ids answered 201
    failed: int = 0  # answered otherwise (or no answer): the caller knows it was not confirmed
    reasons: dict[str, int] = field(default_factory=dict)  # why, e.g. {"502": 40, "ConnectError": 3}
    failed_at: list[float] = field(default_factory=list)  # seconds into the burst each failed create was sent
    server_errors: list[str] = field(default_factory=list)  # the bodies of 500 answers (an outage is 503)

    def fail(self, reason: str, sent_at: float, body: str | None = None) -> None:
        self.failed += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        self.failed_at.append(sent_at)
        if reason == "500" and body is not None:
            self.server_errors.append(f"{sent_at:.1f}s: {body[:500]}")


class Platform:
    """`make run` as a user runs it (`python -m devstack.run auth tenants webhook-dispatcher`, its own
    process: the keeper's timing is not the load generator's), and the gateway client. Parts are
    killed by pid; their state is read from DATA_DIR/status.json, as an operator would."""

    def __init__(self, data_dir: Path, receiver) -> None:
        self.data_dir = data_dir
        self.receiver = receiver
        self.ports = {n: free_port() for n in NAMES}
        self.gateway_port = free_port()
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self.lines: list[str] = []  # what `make run` printed
        self.headers: dict[str, str] = {}
        self.hook = None  # the latest subscriber: where "events flow again" is seen

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS") and not k.endswith("_DATABASE_URL")}
        env.update({
            "DATA_DIR": str(self.data_dir),
            "GATEWAY_PORT": str(self.gateway_port),
            **{f"{n.upper().replace('-', '_')}_PORT": str(port) for n, port in self.ports.items()},
            "PLATFORM_OWNER_EMAIL": OWNER_EMAIL,
            "PLATFORM_OWNER_PASSWORD": OWNER_PASSWORD,
            "WEBHOOK_ALLOWED_PRIVATE_CIDRS": "127.0.0.1/32",
            "WEBHOOK_CA_BUNDLE": str(self.receiver.ca_bundle_path),
            "WEBHOOK_RETRY_SCHEDULE": "0.3,0.5,1,1,2,2,2,2,2,2",
            "RATE_LIMIT_PER_MINUTE": "1000000",
            "OUTBOX_POLL_INTERVAL_SECONDS": "0.5",
            # `make run` gives the embedded broker one partition per topic; a cluster has several (k8s: 6-12).
            # Three here, so a broker loss and its re-publishing are tested across partitions.
            "KAFKA_TOPIC_PARTITIONS": "3",
        })
        return env

    async def start(self, timeout: float = 300.0) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "devstack.run", *NAMES, env=self._env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        ready = asyncio.Event()

        async def read(process) -> None:
            while line := (await process.stdout.readline()).decode(errors="replace"):
                self.lines.append(line.rstrip())
                if "Ctrl-C to stop" in line:
                    ready.set()

        self._reader = asyncio.create_task(read(self.process))
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait([waiting, self._reader], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            waiting.cancel()
            raise RuntimeError("make run did not start:\n" + "\n".join(self.lines[-60:]))

    async def stop(self) -> None:
        """Ctrl-C, as a user stops `make run`."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), 90)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    def log_digest(self, lines: int = 25) -> str:
        """The services' recent warnings and errors (not the broker client's reconnect noise)."""
        out = []
        for name in NAMES:
            path = self.data_dir / "logs" / f"{name}.log"
            kept = [line[:300] + (" ... " + line[-500:] if len(line) > 800 else "")
                    for line in path.read_text(errors="replace").splitlines()
                    if ('"WARNING"' in line or '"ERROR"' in line) and '"logger":"aiokafka' not in line]
            out += [f"--- {name}.log"] + kept[-lines:]
        return "\n".join(out)

    async def explain_losses(self, lost: set[str]) -> str:
        """For tenants created (201) whose event never reached the subscriber: where each one stopped --
        its outbox row (published or not), the tenants topic (on the broker now), the dispatcher's inbox and
        deliveries. Read while the platform still runs, for the log of a failed case."""
        pgdata = self.data_dir / "postgres"
        port = int((pgdata / "postmaster.pid").read_text().splitlines()[3])

        async def fetch(database: str, sql: str, *args) -> list:
            conn = await asyncpg.connect(host=str(pgdata), port=port, user="postgres", database=database)
            try:
                return await conn.fetch(sql, *args)
            finally:
                await conn.close()

        rows = await fetch("tenants", "SELECT aggregate_id, event_id::text AS id, created_at, published_at FROM outbox "
                                      "WHERE event_type = 'tenant.created' AND aggregate_id = ANY($1)", list(lost))
        ids = {r["id"] for r in rows}
        seen = {str(r["event_id"]) for r in await fetch("webhook_dispatcher", "SELECT event_id FROM inbox "
                                                        "WHERE event_id = ANY($1::uuid[])", list(ids))}
        delivered = {str(r["event_id"]) for r in await fetch("webhook_dispatcher", "SELECT event_id FROM "
                                                             "webhook_deliveries WHERE event_id = ANY($1::uuid[])",
                                                             list(ids))}
        kafka = psutil.Process(self.pid_of("kafka")).cmdline()
        bootstrap = next(a for a in kafka if a.startswith("tcp://")).removeprefix("tcp://")
        in_topic: dict[str, tuple[int, int]] = {}
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            topic = "platform.tenants.events"
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or
                                                              await consumer.partitions_for_topic(topic) or ())]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while batches := await consumer.getmany(timeout_ms=2000, max_records=10_000):
                for records in batches.values():
                    for record in records:
                        event = orjson.loads(record.value)["id"]
                        if event in ids:
                            in_topic[event] = (record.partition, record.offset)
        finally:
            await consumer.stop()
        unpublished = [r for r in rows if r["published_at"] is None]
        lines = [f"    {len(lost)} lost: {len(rows)} in the tenants outbox ({len(unpublished)} unpublished), "
                 f"{len(in_topic)} in the topic now, {len(seen)} in the dispatcher's inbox, "
                 f"{len(delivered)} with delivery rows"]
        for r in sorted(rows, key=lambda r: r["created_at"])[:20]:
            lines.append(f"      {r['aggregate_id']} created {r['created_at']:%H:%M:%S.%f} published "
                         f"{r['published_at'] and format(r['published_at'], '%H:%M:%S.%f')} "
                         f"topic {in_topic.get(r['id'])} inbox {r['id'] in seen} delivery {r['id'] in delivered}")
        return "\n".join(lines)

    def keep_logs(self, case: str) -> Path:
        """Copy the stack's log folder out of DATA_DIR (removed after the module): for a case that saw a 500."""
        kept = Path(tempfile.gettempdir()) / f"chaos-logs-{''.join(c if c.isalnum() else '-' for c in case)}-{int(time.time())}"
        shutil.copytree(self.data_dir / "logs", kept, dirs_exist_ok=True)
        return kept

    def status(self) -> dict:
        try:
            return json.loads((self.data_dir / "status.json").read_text())
        except (OSError, ValueError):  # being replaced: read again
            return {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    async def login(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=15) as c:
            resp = await c.post("/api/auth/login", json={"email": OWNER_EMAIL, "password": OWNER_PASSWORD})
            resp.raise_for_status()
            self.headers = {"Authorization": f"Bearer {resp.json()['accessToken']}"}

    async def subscriber(self):
        hook = self.receiver.hook()
        async with httpx.AsyncClient(base_url=self.url, timeout=15) as c:
            resp = await c.post("/api/platform/webhooks", headers=self.headers,
                                json={"url": hook.url, "events": ["tenant.created"], "description": "chaos"})
        assert resp.status_code == 201 and resp.json()["status"] == "ACTIVE", resp.text
        self.hook = hook
        return hook

    # ------------------------------------------------------------------ what dies
    def pid_of(self, part: str) -> int:
        if part == "postgres":
            return int((self.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        children = psutil.Process(self.process.pid).children(recursive=True)
        if part in self.ports:  # the process listening on the service's port (its spare waits, not listening)
            [child] = [c for c in children if self.ports[part] in _listening(c)]
            return child.pid
        mark = {"kafka": "--listener-url", "gateway": "Caddyfile"}[part]
        [child] = [c for c in children if mark in " ".join(c.cmdline())]
        return child.pid

    def kill(self, part: str) -> None:
        """SIGKILL one part: a service, "kafka", "gateway" or "postgres" (its postmaster)."""
        os.kill(self.pid_of(part), signal.SIGKILL)

    async def back_within(self, part: str, restarts_before: int, timeout: float = 180.0) -> float:
        """Seconds until `make run` reports `part` up again after a kill."""
        t0 = time.monotonic()
        async with asyncio.timeout(timeout):
            while not ((st := self.status().get(part)) and st["restarts"] > restarts_before and st["state"] == "up"):
                await asyncio.sleep(0.05)
        return time.monotonic() - t0

    async def kill_and_time(self, part: str, recovery: dict[str, Recovery]) -> None:
        before = self.status()[part]["restarts"]
        t0, since = time.monotonic(), time.time()
        self.kill(part)
        back = await self.back_within(part, before)
        recovery[part] = Recovery(back, await self.flowing_since(t0, since))

    async def stop_start(self, recovery: dict[str, Recovery]) -> None:
        t0, since = time.monotonic(), time.time()
        await self.stop()
        await self.start()
        recovery["full stop/start"] = Recovery(time.monotonic() - t0, await self.flowing_since(t0, since))

    async def flowing_since(self, t0: float, since: float, timeout: float = 180.0) -> float:
        """Seconds from `t0` until the subscriber receives an event that happened after `since` (the
        kill, wall clock): events flow again end to end. Deliveries of what was queued before may come
        first; a create is sent (again until one is answered 201) so that such an event exists even when
        the burst is over."""
        def fresh(h) -> bool:
            return any(parsed(r)[1] >= since for r in h.events())

        async with asyncio.timeout(timeout), httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            while not fresh(self.hook):
                try:
                    resp = await client.post("/api/platform/tenants", headers=self.headers,
                                             json={"name": f"Probe {uuid.uuid4().hex[:8]}", "plan": "Pro"})
                    if resp.status_code == 201:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)  # polling for the platform's return, not waiting out a guess
        await self.hook.wait_for(fresh, timeout=timeout)
        return time.monotonic() - t0

    # ------------------------------------------------------------------ the load
    async def burst(self, count: int, rate: float,
                    actions: dict[float, Callable[[], Awaitable[None]]] | None = None) -> BurstResult:
        """`count` tenant creates through the gateway at `rate` per second; `actions` run (in the
        background) when that fraction of the creates has been sent."""
        result = BurstResult()
        pending_actions = sorted((actions or {}).items())
        background: list[asyncio.Task] = []
        limits = httpx.Limits(max_connections=128, max_keepalive_connections=64)
        # A generous timeout: on this shared 2-core machine a create can take seconds; the question is loss.
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with httpx.AsyncClient(base_url=self.url, timeout=30, limits=limits) as client:
            async def create(i: int) -> None:
                sent_at = loop.time() - start
                try:
                    resp = await client.post("/api/platform/tenants", headers=self.headers,
                                             json={"name": f"Chaos {i} {uuid.uuid4().hex[:8]}", "plan": "Pro"})
                except httpx.HTTPError as exc:
                    result.fail(type(exc).__name__, sent_at)
                    return
                if resp.status_code == 201:
                    result.created.append(resp.json()["id"])
                else:
                    result.fail(str(resp.status_code), sent_at, resp.text)

            creates = []
            for i in range(count):
                while pending_actions and i >= pending_actions[0][0] * count:
                    background.append(asyncio.create_task(pending_actions.pop(0)[1]()))
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing the load, not waiting for an outcome
                creates.append(asyncio.create_task(create(i)))
            await asyncio.gather(*creates)
        await asyncio.gather(*background)
        return result


_parsed: dict[int, tuple[str, float]] = {}


def parsed(request) -> tuple[str, float]:
    """(tenant id, event time) of a delivery, its body parsed once: the waits re-check every delivery each
    time one arrives, and parsing them all again each time starved the test's own event loop (the
    receiver's, the load's) for seconds within a 1,000-event burst."""
    if id(request) not in _parsed:
        body = request.json()
        _parsed[id(request)] = (body["data"]["tenantId"], datetime.fromisoformat(body["timestamp"]).timestamp())
    return _parsed[id(request)]


def _listening(process: psutil.Process) -> set[int]:
    try:
        return {c.laddr.port for c in process.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}
    except psutil.Error:  # gone meanwhile
        return set()


async def settle(platform: Platform, hook, result: BurstResult, timeout: float = 240.0) -> dict[str, int]:
    """Wait until every confirmed create reached the subscriber (or the timeout), prove nothing more is
    on its way with a marker create sent after, and count lost and duplicated deliveries."""
    wanted = set(result.created)

    def delivered() -> set[str]:
        return {parsed(r)[0] for r in hook.events()}

    with_marker = False
    try:
        await hook.wait_for(lambda h: wanted <= delivered(), timeout=timeout)
        marker = (await platform.burst(1, 1.0)).created
        assert marker, "the marker create failed"
        await hook.wait_for(lambda h: marker[0] in delivered(), timeout=120)
        with_marker = True
    except TimeoutError:
        pass
    received = [r for r in hook.events() if parsed(r)[0] in wanted]
    ids = [r.headers["webhook-id"] for r in received]
    ids_by_tenant: dict[str, set[str]] = {}
    for r in received:
        ids_by_tenant.setdefault(parsed(r)[0], set()).add(r.headers["webhook-id"])
    return {
        "created": len(wanted),
        "failed": result.failed,
        "why_failed": result.reasons,
        "failures_sent": (f"{min(result.failed_at):.1f}-{max(result.failed_at):.1f}s into the burst"
                          if result.failed_at else ""),
        "delivered": len({parsed(r)[0] for r in received}),
        "lost": len(wanted - {parsed(r)[0] for r in received}),
        "duplicates": len(ids) - len(set(ids)),
        "one_id_per_tenant": int(all(len(ids) == 1 for ids in ids_by_tenant.values())
                                 and set(ids_by_tenant) == wanted),
        "settled_with_marker": int(with_marker),
    }


def report(name: str, counts: dict[str, int], recovery: dict[str, Recovery]) -> str:
    back = ", ".join(f"{k} {v}" for k, v in recovery.items())
    line = (f"CHAOS {name}: created={counts['created']} failed={counts['failed']} {counts['why_failed'] or ''} "
            f"{counts['failures_sent']} "
            f"delivered={counts['delivered']} lost={counts['lost']} duplicates={counts['duplicates']}"
            + (f"; {back}" if back else ""))
    print(line)
    return line


receiver = server_fixture(webhook_receiver, "receiver", scope="module")


@pytest.fixture(scope="module")
async def platform(receiver):
    data_dir = Path(tempfile.mkdtemp(prefix="chaos-"))  # short: the PostgreSQL socket lives in it
    p = Platform(data_dir, receiver)
    try:
        await p.start()
        await p.login()
        yield p
    finally:
        await p.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
