"""Run the whole platform (or part of it) locally: PostgreSQL, Kafka, migrations, services, gateway.

``make run`` (:mod:`devstack.run`) is a thin CLI over :class:`Stack`; the pytest plugin can use the
same API to bring up any subset::

    stack = Stack(data_dir, env=None, root=None, registry=SERVICES,
                  progress=print, extra_env={"LOG_LEVEL": "debug"})
    await stack.start_infra(kafka_port=None)      # postgres + kafka (concurrently) + all databases
    stack.database_urls                            # {name: "postgresql+asyncpg://..."}
    stack.bootstrap_servers                        # "127.0.0.1:<port>"
    await stack.start_services(["auth", "tenants"], ports={"auth": 18101}, migrate=True)
        # per service, concurrently: alembic upgrade head -> uvicorn -> GET /readyz == 200
    await stack.migrate("leads")                   # just the migration (False: already at head, skipped)
    stack.service_env("leads", port=None) -> dict  # the full environment a service process gets
    await stack.start_gateway(port=18080, upstreams=None)  # default: the started services
    stack.services["auth"].url                     # "http://127.0.0.1:18101"
    await stack.start(names=None, gateway_port=8080)  # everything, what `make run` does (service processes
                                                   # start first, importing while the rest gets ready)
    await stack.stop()                             # services (TERM, then KILL), caddy, tansu, postgres
    # share infrastructure: assign before starting; stop() only stops what this stack started
    stack.postgres = existing_postgres; stack.broker = existing_broker
    stack.kill()                                   # immediate SIGKILL of every child (2nd Ctrl-C)
    await stack.restart_service("tenants")         # after it died: same port, no migration, /readyz
    await stack.restart_kafka() / restart_gateway() / restart_postgres()   # same addresses
    # devstack.keeper.Keeper(stack).run() calls these for whatever dies (what `make run` does)
    async with Stack(...) as stack: ...            # stop() on exit

Failures while starting raise :class:`StartupError` whose message carries the tail of the log.
Logs: ``<data_dir>/logs/<name>.log`` (migration + service), ``kafka.log``, ``gateway.log``;
PostgreSQL's own log is ``<data_dir>/postgres/log``.

Service ports default to the registry's; ``<NAME>_PORT`` in the environment (``AUTH_PORT``,
``WEBHOOK_DISPATCHER_PORT``) or ``ports=`` overrides them. Each service process gets the parent environment plus DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS,
AUTH_JWKS_URL, SERVICE_NAME, SECRETS_ENCRYPTION_KEYS, PLATFORM_OWNER_EMAIL,
PLATFORM_OWNER_PASSWORD (secrets from :mod:`devstack.credentials`), PYTHONUNBUFFERED=1 and
OTEL_SERVICE_NAME (unless set), the service's replica id (``ServiceSpec.replica_id_var``, unless set:
``<host>:<port>``), then ``extra_env``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import credentials, docs, serve
from ._proc import all_or_none, free_port, kill_now, log_size, port_in_use, repo_root, spawn, tail, terminate
from .gateway import Gateway, start_gateway
from .kafka import Broker, start_kafka
from .migrations import at_head
from .postgres import Postgres, provision_databases, restart_embedded, start_embedded, start_postgres
from .services import JWKS_PATH, SERVICES, ServiceSpec

MIGRATION_TIMEOUT = 180.0
READY_TIMEOUT = 120.0
READY_POLL = 0.05  # seconds between /readyz polls of a starting service (each a few ms of its CPU)
LOG_ROTATE_BYTES = 10 * 1024 * 1024


class StartupError(RuntimeError):
    pass


@dataclass
class ServiceProcess:
    spec: ServiceSpec
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    ready: bool = False
    log_offset: int = 0  # where this run's output starts in log_path

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines, self.log_offset)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("DATA_DIR") or "./.data").expanduser().resolve()


class Stack:
    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        root: Path | None = None,
        registry: Sequence[ServiceSpec] = SERVICES,
        progress: Callable[[str], None] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.env: dict[str, str] = dict(os.environ if env is None else env)
        self.data_dir = Path(data_dir).resolve() if data_dir else default_data_dir(self.env)
        self.root = root or repo_root()
        self.registry = {s.name: s for s in registry}
        self.logs_dir = self.data_dir / "logs"
        self.docs_dir = self.data_dir / "docs"
        self.extra_env = dict(extra_env or {})
        self._progress = progress
        self.t0 = time.monotonic()

        self.postgres: Postgres | None = None
        self.broker: Broker | None = None
        self.gateway: Gateway | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.database_urls: dict[str, str] = {}
        # default ports from the registry; ``<NAME>_PORT`` (e.g. AUTH_PORT=18101) overrides
        self.ports: dict[str, int] = {
            s.name: int(self.env.get(f"{s.env_prefix}_PORT") or s.port) for s in registry
        }
        self._secrets: dict[str, str] | None = None
        self._gateway_args: tuple[int, dict[str, str]] | None = None  # (port, upstreams), for a restart
        self._owned: set[str] = set()  # "postgres" / "kafka" started by this stack
        # Service processes importing ahead of their start (devstack.standby): name -> (process, port, spare?)
        self._standby: dict[str, tuple[subprocess.Popen[bytes], int, bool]] = {}
        self._side_ports: dict[str, dict[str, str]] = {}

    # ------------------------------------------------------------------ helpers
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def note(self, message: str) -> None:
        if self._progress is not None:
            self._progress(f"[{self.elapsed():5.1f}s] {message}")

    @property
    def secrets(self) -> dict[str, str]:
        if self._secrets is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._secrets = credentials.load_or_create_secrets(self.data_dir, self.env)
        return self._secrets

    @property
    def bootstrap_servers(self) -> str:
        if self.broker is None:
            raise RuntimeError("kafka not started")
        return self.broker.bootstrap

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def _prepare_dirs(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        for log in self.logs_dir.glob("*.log"):
            if log.stat().st_size > LOG_ROTATE_BYTES:
                log.replace(log.with_suffix(".log.1"))

    def _spec(self, name: str) -> ServiceSpec:
        try:
            return self.registry[name]
        except KeyError:
            raise KeyError(f"unknown service {name!r}; known: {', '.join(self.registry)}") from None

    # ------------------------------------------------------------------ infrastructure
    async def start_postgres(self) -> Postgres:
        if self.postgres is not None:
            return self.postgres
        self._prepare_dirs()
        if self.env.get("DATABASE_URL"):
            self.postgres = await start_postgres(self.data_dir, self.env)
        else:
            # a thread cannot be cancelled: on Ctrl-C wait for it, so stop() sees the server
            fut = asyncio.ensure_future(asyncio.to_thread(start_embedded, self.data_dir))
            try:
                self.postgres = await asyncio.shield(fut)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    self.postgres = await fut
                    self._owned.add("postgres")
                raise
            self._owned.add("postgres")  # also a reused one: this DATA_DIR's server is ours
        self.note(f"postgres ready ({self.postgres.mode})")
        return self.postgres

    async def start_kafka(self, port: int | None = None) -> Broker:
        if self.broker is not None:
            return self.broker
        self._prepare_dirs()
        self.broker = await start_kafka(self.env, port=port, log_path=self.log_path("kafka"))
        self._owned.add("kafka")
        kind = "tansu" if self.broker.embedded else "external"
        self.note(f"kafka ready ({kind}, {self.broker.bootstrap})")
        return self.broker

    async def provision(self, names: Iterable[str] | None = None) -> dict[str, str]:
        """Create the databases (all registered services by default); fills ``database_urls``."""
        pg = await self.start_postgres()
        specs = [self._spec(n) for n in (names or self.registry)]
        # extra_env counts too: a stack given <NAME>_DATABASE_URL (e.g. a second stack on a shared server, as
        # in the tests) must create and use those databases, not the default ones another stack owns.
        urls = await provision_databases(pg, specs, self.env | self.extra_env)
        self.database_urls.update(urls)
        return urls

    async def start_infra(self, *, kafka_port: int | None = None) -> None:
        """PostgreSQL and Kafka concurrently, then every service's database."""
        await asyncio.gather(self.start_postgres(), self.start_kafka(kafka_port))
        await self.provision()
        self.note(f"databases ready ({len(self.database_urls)})")

    # ------------------------------------------------------------------ services
    def service_env(self, name: str, port: int | None = None) -> dict[str, str]:
        spec = self._spec(name)
        if name not in self.database_urls:
            raise RuntimeError(f"no database for {name}: call provision() first")
        auth_port = self.ports.get("auth", 8101)
        env = dict(self.env)
        env.update(self.secrets)
        env.update(
            {
                "DATABASE_URL": self.database_urls[name],
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                "AUTH_JWKS_URL": f"http://127.0.0.1:{auth_port}{JWKS_PATH}",
                "SERVICE_NAME": spec.name,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.setdefault("OTEL_SERVICE_NAME", spec.name)
        if spec.replica_id_var:
            # The same on every restart of this service, and no other live process listens on its port.
            env.setdefault(spec.replica_id_var, f"{socket.gethostname()}:{port or self.ports.get(name, spec.port)}")
        env.update(self.side_ports(name))
        if self.broker is not None and self.broker.embedded:
            # tansu holds every join ~1 s (at 1000) to 3 s (at 6000), and a consumer restarted after a SIGKILL
            # waits for its dead predecessor's session to end: measured (aiokafka 0.14, tansu 0.6) first join
            # 2.0 s and join after a killed member 7.1 s at 3000, both 1.0 s at 1000 (the dead member's session
            # ends within the first hold). Heartbeats every 1/3 of it: a few tiny requests a second.
            env.setdefault("KAFKA_SESSION_TIMEOUT_MS", "1000")
            # One process per service here, so more than one partition per topic spreads nothing; and tansu's
            # work for every fetch, which an idle consumer sends 10 times a second and tansu holds for the
            # whole wait, grows with the partitions it names: the dispatcher's fetch names every topic. Idle
            # `make run`, tansu measured ~5 % of a core with 3 partitions, ~3 % with 1.
            env.setdefault("KAFKA_TOPIC_PARTITIONS", "1")
        env.update(self.extra_env)
        return env

    def side_ports(self, name: str) -> dict[str, str]:
        """The service's other ports (``ServiceSpec.side_ports``): their ``make run`` defaults when it runs on its
        own default port, free ones otherwise (a test stack next to ``make run``); the same on every restart."""
        spec = self._spec(name)
        if name not in self._side_ports:
            on_defaults = self.ports.get(name, spec.port) == spec.port
            self._side_ports[name] = {var: str(self.extra_env.get(var) or self.env.get(var)
                                                  or (default if on_defaults else free_port()))
                                      for var, default in spec.side_ports}
        return self._side_ports[name]

    async def migrate(self, name: str) -> bool:
        """``alembic upgrade head`` for ``name``, unless its database already is at the head (False then)."""
        spec = self._spec(name)
        ini = spec.alembic_ini(self.root)
        if not ini.exists():
            raise StartupError(f"{name}: {ini} not found")
        if await self._at_head(name, ini):
            return False
        argv = [sys.executable, "-m", "alembic", "-c", str(ini), "upgrade", "head"]
        log = self.log_path(name)
        offset = log_size(log)
        proc = spawn(
            argv, env=self.service_env(name), log_path=log, cwd=self.root, header="alembic upgrade head"
        )
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + MIGRATION_TIMEOUT
            while proc.poll() is None:
                if loop.time() > deadline:
                    raise StartupError(f"{name}: migration still running after {MIGRATION_TIMEOUT:.0f}s")
                await asyncio.sleep(0.05)
        finally:
            if proc.poll() is None:
                await terminate(proc, 2)
        if proc.returncode != 0:
            raise StartupError(
                f"{name}: migration failed (exit {proc.returncode}); last lines of {log}:\n{tail(log, 40, offset)}"
            )
        return True

    async def _at_head(self, name: str, ini: Path) -> bool:
        try:
            return await at_head(self.database_urls[name], ini)
        except Exception as exc:  # unreadable scripts or database: the migration process tells what is wrong
            self.note(f"{name}: schema version not checked ({type(exc).__name__}: {exc}); migrating")
            return False

    def spawn_service(self, name: str, port: int | None = None) -> ServiceProcess:
        spec = self._spec(name)
        port = port or self.ports.get(name, spec.port)
        self.ports[name] = port
        if port_in_use(port):
            raise StartupError(f"{name}: port {port} is already in use (another `make run`?)")
        log = self.log_path(name)
        proc, offset = self._go_standby(name, port)
        if proc is None:
            # uvicorn's CLI with a main loop that sleeps (devstack.serve): the process shows that command line.
            argv = [sys.executable, "-m", "devstack.serve", *serve.argv(spec.app_factory, "127.0.0.1", port)[3:]]
            offset = log_size(log)
            proc = spawn(argv, env=self.service_env(name, port), log_path=log, cwd=self.root, header="uvicorn")
        sp = ServiceProcess(spec, port, log, proc, log_offset=offset)
        self.services[name] = sp
        return sp

    def start_standbys(self, names: Iterable[str], *, spare: bool = False) -> None:
        """Start a process per service now, importing its app; `spawn_service` then only tells it to serve
        (see :mod:`devstack.standby`). `spare`: for when the running one dies -- without the app in its
        command line (an operator looking for the service finds only the service)."""
        for name in names:
            spec, port = self._spec(name), self.ports[name]
            if name in self._standby or (name in self.services and not spare):
                continue
            argv = [sys.executable, "-m", "devstack.standby",
                    *([] if spare else [spec.app_factory, "--factory"]),
                    "--host", "127.0.0.1", "--port", str(port), *(["--spare"] if spare else [])]
            proc = spawn(argv, env={**self.env, "PYTHONUNBUFFERED": "1"}, log_path=self.log_path(name),
                         cwd=self.root, stdin=subprocess.PIPE)
            if spare:
                proc.stdin.write(json.dumps({"app": spec.app_factory}).encode() + b"\n")
                proc.stdin.flush()
            self._standby[name] = (proc, port, spare)

    def _go_standby(self, name: str, port: int) -> tuple[subprocess.Popen[bytes] | None, int]:
        proc, standby_port, spare = self._standby.pop(name, (None, 0, False))
        if proc is None:
            return None, 0
        log = self.log_path(name)
        offset = log_size(log)
        try:
            if proc.poll() is not None or standby_port != port:
                raise OSError("not waiting")
            with open(log, "ab") as out:
                out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} uvicorn (devstack.standby) =====\n".encode())
            proc.stdin.write(json.dumps({"env": self.service_env(name, port)}).encode() + b"\n")
            proc.stdin.close()
        except (OSError, ValueError):
            kill_now(proc)  # it died while importing (the log says why) or is of no use: start afresh
            return None, 0
        return proc, offset

    def _drop_standbys(self) -> None:
        for proc, _, _ in self._standby.values():
            kill_now(proc)
        self._standby.clear()

    async def wait_ready(self, name: str, timeout: float = READY_TIMEOUT) -> None:
        import httpx

        sp = self.services[name]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = "no answer"
        async with httpx.AsyncClient(timeout=3.0, trust_env=False) as client:
            while True:
                if not sp.alive():
                    code = sp.process.returncode if sp.process else None
                    raise StartupError(
                        f"{name}: exited with code {code} while starting; last lines of {sp.log_path}:\n"
                        f"{sp.log_tail()}"
                    )
                try:
                    r = await client.get(f"{sp.url}/readyz")
                    if r.status_code == 200:
                        sp.ready = True
                        return
                    last = f"/readyz answered {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}"
                if loop.time() > deadline:
                    raise StartupError(
                        f"{name}: not ready after {timeout:.0f}s ({last}); last lines of {sp.log_path}:\n"
                        f"{sp.log_tail()}"
                    )
                await asyncio.sleep(READY_POLL)

    async def _bring_up(self, name: str, port: int | None, migrate: bool, timeout: float) -> None:
        t = time.monotonic()
        if migrate:
            if await self.migrate(name):
                self.note(f"{name}: migrated ({time.monotonic() - t:.1f}s)")
            else:
                self.note(f"{name}: schema at head ({time.monotonic() - t:.1f}s)")
        self.spawn_service(name, port)
        await self.wait_ready(name, timeout)
        self.note(f"{name}: ready on {self.services[name].url}")

    async def start_services(
        self,
        names: Iterable[str] | None = None,
        ports: Mapping[str, int] | None = None,
        *,
        migrate: bool = True,
        timeout: float = READY_TIMEOUT,
    ) -> dict[str, ServiceProcess]:
        """Migrate, start and wait for /readyz of ``names`` (default: all), concurrently.
        The first failure cancels the others and raises :class:`StartupError`."""
        names = list(names or self.registry)
        ports = dict(ports or {})
        for n in names:
            self.ports[n] = ports.get(n, self.ports.get(n, self._spec(n).port))
        busy = [f"{n} ({self.ports[n]})" for n in names if port_in_use(self.ports[n])]
        if busy:
            raise StartupError(f"ports already in use: {', '.join(busy)} (another `make run`?)")
        missing = [n for n in names if n not in self.database_urls]
        if missing:
            await self.provision(missing)
        if self.broker is None:
            await self.start_kafka()
        await all_or_none([self._bring_up(n, self.ports[n], migrate, timeout) for n in names])
        return {n: self.services[n] for n in names}

    # ------------------------------------------------------------------ gateway
    async def start_gateway(
        self, port: int | None = None, upstreams: Mapping[str, str] | None = None
    ) -> Gateway:
        if port is None:
            port = int(self.env.get("GATEWAY_PORT") or 8080)
        if upstreams is None:
            upstreams = {n: f"127.0.0.1:{sp.port}" for n, sp in self.services.items()}
        docs.build_docs(self.docs_dir, self.registry.values())
        self._gateway_args = (port, dict(upstreams))
        try:
            self.gateway = await start_gateway(
                port=port,
                upstreams=upstreams,
                docs_root=self.docs_dir,
                caddyfile=self.root / "deploy" / "gateway" / "Caddyfile",
                log_path=self.log_path("gateway"),
                env=self.env,
            )
        except RuntimeError as exc:
            raise StartupError(str(exc)) from exc
        self.note(f"gateway ready on {self.gateway.url}")
        return self.gateway

    # ------------------------------------------------------------------ all
    async def start(
        self,
        names: Iterable[str] | None = None,
        *,
        gateway_port: int | None = None,
        kafka_port: int | None = None,
    ) -> None:
        """Everything ``make run`` starts. Raises StartupError (the caller then calls stop())."""
        names = list(names or self.registry)
        if gateway_port is None:
            gateway_port = int(self.env.get("GATEWAY_PORT") or 8080)
        busy = [f"{n} ({self.ports[n]})" for n in names if port_in_use(self.ports[n])]
        if port_in_use(gateway_port):
            busy.append(f"gateway ({gateway_port})")
        if busy:
            raise StartupError(f"ports already in use: {', '.join(busy)} (another `make run`?)")
        _ = self.secrets  # create secrets.env before any service reads it
        self._prepare_dirs()
        self.start_standbys(names)  # their imports overlap PostgreSQL, the broker and the schema checks
        # httpx (the readiness polls) imported meanwhile too: imported at the first poll, it held this loop
        # 0.4 s (2 s on a busy machine) while the other services' schema checks and starts waited.
        warming = asyncio.ensure_future(asyncio.to_thread(importlib.import_module, "httpx"))
        await self.start_infra(kafka_port=kafka_port)
        await warming
        # Caddy needs only the ports: it starts while the services do (502 until each is up).
        await all_or_none([self.start_services(names),
                           self.start_gateway(gateway_port, {n: f"127.0.0.1:{self.ports[n]}" for n in names})])

    async def stop(self, timeout: float = 10.0, *, keep_postgres: bool = False) -> None:
        """Stop: Caddy first (no request comes in; those in flight finish on live services), then the services
        (SIGTERM, SIGKILL after ``timeout``), tansu and the embedded PostgreSQL (unless ``keep_postgres``) --
        only what this stack started (not an assigned ``postgres``/``broker``). Safe to call twice. (Services
        first left the gateway holding every request for its GATEWAY_UPSTREAM_WAIT, and its stop waiting on them.)"""
        self._drop_standbys()
        if self.gateway is not None:
            await self.gateway.stop()
        procs = [sp for sp in self.services.values() if sp.process is not None]
        await asyncio.gather(*(terminate(sp.process, timeout) for sp in procs))
        if self.broker is not None and "kafka" in self._owned:
            await self.broker.stop()
        if self.postgres is not None and "postgres" in self._owned and not keep_postgres:
            await asyncio.to_thread(self.postgres.stop)

    def kill(self) -> None:
        """SIGKILL every child process now (PostgreSQL is left to stop())."""
        self._drop_standbys()
        for sp in self.services.values():
            kill_now(sp.process)
        if self.gateway is not None:
            self.gateway.kill()
        if self.broker is not None and "kafka" in self._owned:
            self.broker.kill()

    # ------------------------------------------------------------------ restarts (see devstack.keeper)
    async def restart_service(self, name: str, timeout: float = READY_TIMEOUT) -> None:
        """Start a service that exited again on its port (no migration: it ran at start) and wait for
        /readyz; its consumers rejoin their groups from the committed offsets."""
        sp = self.services[name]
        if sp.alive():
            raise RuntimeError(f"{name} is running")
        self.spawn_service(name, sp.port)
        try:
            await self.wait_ready(name, timeout)
        except BaseException:
            await terminate(self.services[name].process, 5)  # the next try starts it afresh
            raise

    async def restart_kafka(self) -> None:
        """Start the embedded broker again on the same address (services reconnect by themselves)."""
        from .kafka import start_tansu

        if self.broker is None or not self.broker.embedded:
            raise RuntimeError("no embedded broker to restart")
        port = int(self.broker.bootstrap.rsplit(":", 1)[1])
        self.broker = await start_tansu(port, log_path=self.log_path("kafka"))

    async def restart_gateway(self) -> None:
        if self._gateway_args is None:
            raise RuntimeError("the gateway was never started")
        port, upstreams = self._gateway_args
        await self.start_gateway(port, upstreams)

    async def restart_postgres(self) -> None:
        """Start the embedded server again on the same data directory (it replays its WAL)."""
        if self.postgres is None or self.postgres.mode != "embedded":
            raise RuntimeError("no embedded PostgreSQL to restart")
        await asyncio.to_thread(restart_embedded, self.postgres)

    def dead_services(self) -> list[ServiceProcess]:
        return [sp for sp in self.services.values() if sp.process is not None and not sp.alive()]

    async def __aenter__(self) -> Stack:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()
