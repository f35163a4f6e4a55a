"""The API scenarios: (g) create throughput vs a bare FastAPI + asyncpg insert, (h) list pages at 10,000 rows,
(i) idle CPU of the whole stack.

(g) drives both apps with the same closed loop (CLIENTS concurrent aiohttp clients, each sending its next
call when the last answered) and reports requests/s, CPU per request of the app's process, and how many
new PostgreSQL sessions the tenants service opened meanwhile (`pg_stat_database.sessions`: a pool that
churns opens them by the hundred).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from bench import client_gc
from bench.machine import CpuMonitor, describe
from bench.scenarios import percentile
from bench.stack import Api

Progress = Callable[[str], None]
CLIENTS = 32
LIST_ROWS = 10_000


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


# --- (g) create throughput ---------------------------------------------------------------------------
class Baseline:
    """bench/baseline.py in its own uvicorn process, on its own database of the stack's PostgreSQL."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.process: Any = None
        self.url = ""

    async def start(self) -> int:
        from devstack._proc import free_port, spawn, wait_tcp

        tenants_url = _plain(self.api.stack.database_urls["tenants"])
        conn = await asyncpg.connect(tenants_url)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'bench_baseline'"):
                await conn.execute("CREATE DATABASE bench_baseline")
        finally:
            await conn.close()
        parts = urlsplit(tenants_url)  # e.g. postgresql://u:p@/tenants?host=/socket/dir
        port = free_port()
        env = dict(self.api.stack.env) | {"BASELINE_DATABASE_URL": urlunsplit(parts._replace(path="/bench_baseline"))}
        self.process = spawn([sys.executable, "-m", "uvicorn", "bench.baseline:create_app", "--factory",
                              "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
                             env=env, log_path=self.api.stack.log_path("baseline"),
                             cwd=self.api.stack.root, header="baseline")
        await wait_tcp("127.0.0.1", port, 30.0, self.process)
        self.url = f"http://127.0.0.1:{port}"
        return self.process.pid

    async def stop(self) -> None:
        from devstack._proc import terminate

        await terminate(self.process)


async def _closed_loop(call: Callable[[], Awaitable[int]], seconds: float) -> tuple[int, int, list[float]]:
    """CLIENTS loops calling `call` until `seconds` are over: (ok, failed, latencies in ms)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    ok = failed = 0
    took: list[float] = []

    async def client() -> None:
        nonlocal ok, failed
        while loop.time() < end:
            t0 = time.perf_counter()
            status = await call()
            took.append((time.perf_counter() - t0) * 1000)
            if status == 201:
                ok += 1
            else:
                failed += 1

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return ok, failed, took


async def _sessions(conn: asyncpg.Connection, database: str) -> int:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return int(await conn.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = $1", database) or 0)


async def create_rate(api: Api, *, seconds: float, warmup: float, cpu: CpuMonitor,
                      progress: Progress) -> dict[str, Any]:
    baseline = Baseline(api)
    cpu.track("baseline", await baseline.start())
    session: aiohttp.ClientSession = api.session

    async def bare() -> int:
        body = {"name": f"Bench {uuid.uuid4().hex[:16]}", "plan": "Pro"}
        try:
            async with session.post(f"{baseline.url}/tenants", json=body) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, TimeoutError):
            return 0

    async def tenant() -> int:
        return (await api.create_tenant())[3]

    stats = await asyncpg.connect(_plain(api.stack.database_urls["tenants"]))
    database = stats._params.database  # type: ignore[attr-defined]
    out: dict[str, Any] = {"clients": CLIENTS, "seconds": seconds}
    try:
        # Alternating twice spreads a neighbour's burst over both sides of the ratio.
        for rnd in range(2):
            for name, call, group in (("baseline", bare, "baseline"), ("tenants", tenant, "tenants")):
                await _closed_loop(call, warmup)
                await asyncio.sleep(1.0)  # sessions ended in the warm-up reach the statistics
                s0 = await _sessions(stats, database)
                c0 = cpu.snapshot()
                t0 = time.monotonic()
                with client_gc.held():
                    ok, failed, took = await _closed_loop(call, seconds)
                elapsed = time.monotonic() - t0
                usage = CpuMonitor.usage(c0, cpu.snapshot())
                await asyncio.sleep(1.0)
                s1 = await _sessions(stats, database)
                side = out.setdefault(name, {"ok": 0, "failed": 0, "elapsed": 0.0, "cpu_s": 0.0, "stack_cpu_s": 0.0,
                                             "took": [], "new_sessions": 0})
                side["ok"] += ok
                side["failed"] += failed
                side["elapsed"] += elapsed
                side["cpu_s"] += usage.get(group, 0.0) / 100 * elapsed
                side["stack_cpu_s"] += usage.get("total", 0.0) / 100 * elapsed
                side["took"] += took
                if name == "tenants":
                    side["new_sessions"] += s1 - s0
                progress(f"  (g) round {rnd + 1} {name}: {ok / elapsed:,.0f}/s ({failed} failed), "
                         f"p99 {percentile(took, 99):.0f} ms; {describe(usage)}")
                side.setdefault("cpu", usage)
    finally:
        await stats.close()
        await baseline.stop()
    for name in ("baseline", "tenants"):
        side = out[name]
        took = side.pop("took")
        side["rate"] = side["ok"] / side["elapsed"] if side["elapsed"] else float("nan")
        side["cpu_ms_per_call"] = 1000 * side["cpu_s"] / side["ok"] if side["ok"] else float("nan")
        # Every process of the bench (PostgreSQL, broker, dispatcher, this client too): on a machine with fewer cores
        # than processes, the rates above are this sum's inverse, not the app process's.
        side["stack_cpu_ms_per_call"] = 1000 * side["stack_cpu_s"] / side["ok"] if side["ok"] else float("nan")
        side["p50_ms"], side["p99_ms"] = percentile(took, 50), percentile(took, 99)
    out["ratio"] = out["tenants"]["rate"] / out["baseline"]["rate"] if out["baseline"]["rate"] else float("nan")
    # One process's capacity, as when each app has cores of its own: the inverse of its CPU per call.
    out["process_ratio"] = (out["baseline"]["cpu_ms_per_call"] / out["tenants"]["cpu_ms_per_call"]
                            if out["tenants"]["cpu_ms_per_call"] else float("nan"))
    out["cpu"] = out["tenants"].pop("cpu")
    progress(f"  (g) per process: tenants {out['tenants']['cpu_ms_per_call']:.2f} ms of CPU per create, bare "
             f"{out['baseline']['cpu_ms_per_call']:.2f} ms: ratio {out['process_ratio']:.2f}; on this machine "
             f"(every process sharing it) {out['tenants']['rate']:,.0f}/s vs {out['baseline']['rate']:,.0f}/s = "
             f"{out['ratio']:.2f}, every process's CPU per call {out['tenants']['stack_cpu_ms_per_call']:.2f} / "
             f"{out['baseline']['stack_cpu_ms_per_call']:.2f} ms; new PostgreSQL sessions during tenants: "
             f"{out['tenants']['new_sessions']}")
    return out


# --- (h) list pages at 10,000 rows (--list-rows) ---------------------------------------------------------------------
LIST_QUERIES = {
    "newest first": "",
    "by name": "&sort=name",
    "status=SUSPENDED": "&status=SUSPENDED",
    "plan=Pro": "&plan=Pro",
    "q=a7f3 (a few matches)": "&q=a7f3",
    "q=7f (2 characters: where a word starts, ~50 rows)": "&q=7f",
    "q=zz (2 characters, no match)": "&q=zz",
    # Every seeded row's first word ("Seed"), none of the 2,000 newest ((d)'s "Bench …"): a search matching most rows
    # but not the first ones of the order. Its page walks the order's index past those, and its count passes them in
    # the table: O(rows before the matches), the one (h) query that is not O(page) (README, search).
    "q=s (1 character: 80 % of the rows, none of the newest 2,000)": "&q=s",
    "page 401 by offset (offset 8,000: O(offset))": "&offset=8000",  # OFFSET_PAGE
    "page 401 by cursor (after row 8,000)": "&cursor={cursor}",
}
OFFSET_PAGE = "page 401 by offset (offset 8,000: O(offset))"
CURSOR_DEPTH = 8_000  # the row "page 401 by cursor" starts after, reached by following `nextCursor`


async def _seed_tenants(api: Api, rows: int) -> int:
    conn = await asyncpg.connect(_plain(api.stack.database_urls["tenants"]))
    try:
        have = int(await conn.fetchval("SELECT count(*) FROM tenants"))
        if have < rows:
            # Many rows (`--list-rows 1000000`): the GIN indexes (name search) are built after the load, in bulk,
            # not row by row (about 10x faster), as a restore would.
            gins = [] if rows - have < 100_000 else await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tenants' AND indexdef LIKE '%USING gin%'")
            for gin in gins:
                await conn.execute(f'DROP INDEX "{gin["indexname"]}"')
            # A tenth suspended, plans spread over the three seeded ones, creation times spread over a year.
            await conn.execute("""
                INSERT INTO tenants (id, name, plan_id, status, settings, created_at, updated_at)
                SELECT gen_random_uuid(), 'Seed ' || md5(i::text), p.ids[1 + i % array_length(p.ids, 1)],
                       CASE WHEN i % 10 = 0 THEN 'SUSPENDED' ELSE 'ACTIVE' END, '{}'::jsonb,
                       now() - (i || ' minutes')::interval, now()
                FROM generate_series(1, $1) AS i, (SELECT array_agg(id ORDER BY sort_order) AS ids FROM plans) p
            """, rows - have)
            for gin in gins:
                await conn.execute(gin["indexdef"])
            # As autovacuum leaves a table at rest: statistics, and the visibility map that lets a deep page
            # skip rows in an index-only scan (right after a bulk load every skipped row costs a heap visit).
            await conn.execute("VACUUM ANALYZE tenants")
        return int(await conn.fetchval("SELECT count(*) FROM tenants"))
    finally:
        await conn.close()


async def _cursor_after(api: Api, url: str, rows: int) -> str:
    """The `nextCursor` after the first `rows` rows of the list at `url` (its default order), following cursors 100
    at a time."""
    cursor = ""
    for _ in range(rows // 100):
        async with api.session.get(f"{url}?limit=100" + (f"&cursor={cursor}" if cursor else ""),
                                   headers=api.headers) as resp:
            body = await resp.json()
            if resp.status != 200 or not body["nextCursor"]:
                raise RuntimeError(f"GET {url} by cursor: {resp.status} {str(body)[:300]}")
            cursor = body["nextCursor"]
    return cursor


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """Time on a CPU so far, in seconds: the scheduler's nanoseconds (`/proc/<pid>/schedstat`), else
    `/proc/<pid>/stat`'s 10 ms ticks. With ticks, each backend's figure was off by up to a tick: with three or four
    backends in a page's 100 calls, +-0.1-0.4 ms per page, the size of what (h) measures."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:  # ended meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


async def _backends_cpu(conn: asyncpg.Connection, database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to `database` (the list's service's connections,
    and an autovacuum worker of that database while one runs), but not this measuring connection."""
    pids = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                            database)
    return {row["pid"]: _cpu_seconds(row["pid"]) for row in pids}


async def _pages(api: Api, url: str, queries: dict[str, str], *, calls: int, cpu: CpuMonitor, progress: Progress,
                 what: str, database: str) -> dict[str, Any]:
    """Each query's page (20 rows) `calls` times one after another: p50/p99 and PostgreSQL CPU per page -- of the
    backends of the list's database (`db_cpu_ms`, the target's measure), and of the whole server (`server_cpu_ms`:
    it also holds the other services' work and other databases' autovacuum after the earlier scenarios' bursts)."""
    out: dict[str, Any] = {}
    cursor = await _cursor_after(api, url, CURSOR_DEPTH)
    conn = await asyncpg.connect(_plain(api.stack.database_urls[database]))
    try:
        for label, query in queries.items():
            out[label] = await _page(api, conn, url, label, query.format(cursor=cursor), calls=calls, cpu=cpu,
                                     progress=progress, what=what, database=database)
    finally:
        await conn.close()
    return out


async def _page(api: Api, conn: asyncpg.Connection, url: str, label: str, query: str, *, calls: int,
                cpu: CpuMonitor, progress: Progress, what: str, database: str) -> dict[str, Any]:
    took: list[float] = []
    b0 = await _backends_cpu(conn, database)
    c0 = cpu.snapshot()
    t_start = time.monotonic()
    with client_gc.held():
        for _ in range(calls):  # one at a time: the latency of a page, not of a queue
            t0 = time.perf_counter()
            async with api.session.get(f"{url}?limit=20{query}", headers=api.headers) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"GET {url}{query}: {resp.status} {body[:300]!r}")
            took.append((time.perf_counter() - t0) * 1000)
    elapsed = time.monotonic() - t_start
    usage = CpuMonitor.usage(c0, cpu.snapshot())
    b1 = await _backends_cpu(conn, database)
    db_ms = sum(b1[pid] - b0.get(pid, 0.0) for pid in b1) * 1000 / calls
    server_ms = usage.get("postgres", 0.0) / 100 * elapsed * 1000 / calls
    page = {"p50_ms": percentile(took, 50), "p99_ms": percentile(took, 99), "db_cpu_ms": db_ms,
            "server_cpu_ms": server_ms, "total_exact": json.loads(body)["totalExact"]}
    progress(f"  (h) {what} {label}: p50 {percentile(took, 50):.1f} ms, p99 {percentile(took, 99):.1f} ms, "
             f"PostgreSQL CPU {db_ms:.2f} ms per page (whole server {server_ms:.2f})"
             f"{'' if page['total_exact'] else ' (total estimated)'}")
    return page


# The leads list (started for (h) only): its sorts, a stage filter alone and with a sort, own operations, a search.
LEAD_ROWS = 10_000
LEAD_QUERIES = {
    "newest first": "",
    "by name": "&sort=name",
    "by value, highest first": "&sort=-value",
    "stage=WON (5 %)": "&stage=WON",
    "stage=WON by name": "&stage=WON&sort=name",
    "own operations, last updated": "&ownOperation=true&sort=-updatedAt",
    "q=a7f3 (a few matches)": "&q=a7f3",
    "q=7f (2 characters: where a word starts, ~130 rows)": "&q=7f",
    "q=zz (2 characters, no match)": "&q=zz",
    "page 401 by cursor (after row 8,000)": "&cursor={cursor}",
}


async def _seed_leads(api: Api, rows: int) -> int:
    conn = await asyncpg.connect(_plain(api.stack.database_urls["leads"]))
    try:
        have = int(await conn.fetchval("SELECT count(*) FROM leads"))
        if have < rows:
            # Stages as a pipeline holds them (40 % NEW ... 5 % WON, 5 % LOST), five sources, a tenth own
            # operations, values 0-9,990, creation over a week, updates over the last day.
            await conn.execute("""
                INSERT INTO leads (id, name, email, company, source, value, currency, stage, own_operation,
                                   created_at, updated_at)
                SELECT gen_random_uuid(), 'Lead ' || md5(i::text), 'l' || i || '@' || left(md5((i * 7)::text), 6)
                       || '.example', 'Co ' || left(md5((i * 3)::text), 8),
                       (ARRAY['web', 'referral', 'whatsapp', 'event', 'manual'])[1 + i % 5], (i % 1000) * 10, 'USD',
                       (ARRAY['NEW', 'NEW', 'NEW', 'NEW', 'NEW', 'NEW', 'NEW', 'NEW', 'CONTACTED', 'CONTACTED',
                              'CONTACTED', 'CONTACTED', 'CONTACTED', 'QUALIFIED', 'QUALIFIED', 'QUALIFIED',
                              'PROPOSAL', 'PROPOSAL', 'WON', 'LOST'])[1 + i % 20],
                       i % 10 = 0, now() - (i || ' minutes')::interval, now() - ((i % 1440) || ' minutes')::interval
                FROM generate_series(1, $1) AS i
            """, rows - have)
            await conn.execute("VACUUM ANALYZE leads")  # as autovacuum leaves a table at rest (see _seed_tenants)
        return int(await conn.fetchval("SELECT count(*) FROM leads"))
    finally:
        await conn.close()


async def list_pages(api: Api, *, calls: int, cpu: CpuMonitor, progress: Progress,
                     rows: int = LIST_ROWS) -> dict[str, Any]:
    from devstack._proc import free_port, terminate

    t0 = time.monotonic()
    rows = await _seed_tenants(api, rows)
    progress(f"  (h) {rows:,} tenants seeded in {time.monotonic() - t0:.0f} s")
    out: dict[str, Any] = {"rows": rows, "calls": calls}
    c_all = cpu.snapshot()
    out["queries"] = await _pages(api, api.url("tenants", "/api/platform/tenants"), LIST_QUERIES, calls=calls,
                                  cpu=cpu, progress=progress, what="tenants", database="tenants")
    started = "leads" not in api.stack.services
    if started:
        await api.stack.start_services(["leads"], ports={"leads": free_port()})
        process = api.stack.services["leads"].process
        cpu.track("leads", process.pid if process else None)
    try:
        leads = await _seed_leads(api, LEAD_ROWS)
        out["leads"] = {"rows": leads, "queries": await _pages(
            api, api.url("leads", "/api/platform/leads"), LEAD_QUERIES, calls=calls, cpu=cpu, progress=progress,
            what="leads", database="leads")}
    finally:
        # Read while leads still runs: a process gone by the second snapshot has its CPU counted as "others" (a
        # false warning of a busy machine, 46-50 %: leads' own start-up and pages).
        out["cpu"] = CpuMonitor.usage(c_all, cpu.snapshot())
        if started:
            await terminate(api.stack.services.pop("leads").process, 10)
    qs = [*out["queries"].values(), *out["leads"]["queries"].values()]
    out["worst_p50_ms"] = max(q["p50_ms"] for q in qs)
    # An offset page reads every row it skips (O(offset)): the target is for pages of page size, as the sorts,
    # filters and a cursor give; the offset page is shown beside it.
    by_offset = out["queries"][OFFSET_PAGE]
    out["worst_db_cpu_ms"] = max(q["db_cpu_ms"] for label, q in out["queries"].items() if label != OFFSET_PAGE)
    out["leads"]["worst_db_cpu_ms"] = max(q["db_cpu_ms"] for q in out["leads"]["queries"].values())
    out["offset_db_cpu_ms"] = by_offset["db_cpu_ms"]
    return out


# --- (i) idle CPU ------------------------------------------------------------------------------------
async def idle(api: Api, *, seconds: float, cpu: CpuMonitor, progress: Progress) -> dict[str, Any]:
    """Every service of `make run` (the bench's three plus the others, started for this) doing nothing."""
    from devstack._proc import free_port, terminate
    from devstack.services import SERVICE_NAMES

    stack = api.stack
    extra = [n for n in SERVICE_NAMES if n not in stack.services]
    if extra:
        progress(f"  (i) starting {', '.join(extra)}")
        started = await stack.start_services(extra, ports={n: free_port() for n in extra})
        for name, sp in started.items():
            cpu.track(name, sp.process.pid if sp.process else None)
    try:
        await asyncio.sleep(5.0)  # start-up work (first retention pass aside) settles
        c0 = cpu.snapshot()
        await asyncio.sleep(seconds)
        usage = CpuMonitor.usage(c0, cpu.snapshot())
    finally:
        for name in extra:
            await terminate(stack.services[name].process)
            del stack.services[name]
    stack_total = sum(v for k, v in usage.items() if k not in ("others", "total", "bench", "receiver"))
    progress(f"  (i) idle {seconds:.0f}s, stack {stack_total:.1f} % of a core; {describe(usage)}")
    return {"seconds": seconds, "services": len(SERVICE_NAMES), "stack_pct": stack_total, "cpu": usage}
