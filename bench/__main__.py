"""`make bench` / `python -m bench`: start the stack, run the scenarios, print the table, write JSON.

    python -m bench                      # everything (~3-5 min on 2 cores)
    python -m bench --only a,b           # some scenarios (c needs a and b, f compares with d)
    python -m bench --events 10000 --seconds 5 --keep
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench import api_speed, raw, scenarios, stripe_webhook, whatsapp
from bench.kafka import tenant_created_batch
from bench.machine import CpuMonitor, describe, postmaster_pid
from bench.receiver import HANG_SECONDS, Receiver
from bench.report import build_lines, environment, render, render_cpu, write_json
from bench.stack import Api, make_stack, start_stack

T0 = time.monotonic()
SCENARIOS = ("a", "b", "d", "e", "f", "g", "h", "i", "s", "w")
# The latency scenarios run first, on a stack no burst has touched yet: measured here, (d) right after
# (b)'s 30k-event burst was 2-6 ms slower at p50 (26-30 ms instead of 23-24), the publish hop most.
# (i) first: idle means nothing has run yet. (s) next: billing is up only during it, before any scenario
# has created tenants. (h) and (g) after the latency ones (their rows make the tenants table bigger); (h) before
# (g): its target is a page at 10,000 rows of a table at rest, and after (g) the table held 12-18k rows (the 8-16k
# (g) created, autovacuum still at them).
# (w) starts the conversations service: last.
RUN_ORDER = ("i", "s", "d", "f", "e", "h", "g", "a", "b", "w")


def say(message: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {message}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run, e.g. a,b (default: all)")
    p.add_argument("--events", type=int, default=30_000, help="messages for (a) and (b) (default 30000)")
    p.add_argument("--concurrency", type=int, default=100,
                   help="maxConcurrency of the (b) endpoint; (a) uses as many in flight (default 100)")
    p.add_argument("--rate", type=float, default=200.0, help="API calls/s for (d) and (f) (default 200)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds of (d) and (f) (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before (d) and (f) (default 2)")
    p.add_argument("--low-rate", type=float, default=50.0,
                   help="before (d) and (f), an informative 5 s run at this API rate (0: skip; default 50)")
    p.add_argument("--fanout", type=int, default=100, help="endpoints for (e) (default 100)")
    p.add_argument("--repeats", type=int, default=5, help="repetitions of (e) (default 5)")
    p.add_argument("--stripe-rate", type=float, default=200.0,
                   help="(s) Stripe webhook events/s for the acknowledgement latency (default 200)")
    p.add_argument("--stripe-burst", type=int, default=5000, help="(s) events of the processing burst (default 5000)")
    p.add_argument("--api-seconds", type=float, default=5.0,
                   help="(g): measured seconds per side and round, 2 rounds (default 5)")
    p.add_argument("--list-rows", type=int, default=api_speed.LIST_ROWS,
                   help=f"(h): tenants seeded before the list pages (default {api_speed.LIST_ROWS})")
    p.add_argument("--idle-seconds", type=float, default=20.0, help="(i): idle window (default 20)")
    p.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the services (default INFO)")
    p.add_argument("--keep", action="store_true", help="keep the stack's data directory (logs) afterwards")
    p.add_argument("--json", type=Path, default=None, help="results file (default bench/results/latest.json)")
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.only if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    for name in ("events", "concurrency", "fanout", "repeats", "list_rows"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.list_rows < api_speed.CURSOR_DEPTH + 100:
        p.error(f"--list-rows must be at least {api_speed.CURSOR_DEPTH + 100} (a page by cursor after row "
                f"{api_speed.CURSOR_DEPTH:,} is measured)")
    if not 1 <= args.concurrency <= 200:
        p.error("--concurrency must be within 1..200 (the API's maxConcurrency range)")
    return args


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir = Path(tempfile.mkdtemp(prefix="plataforma-bench-"))
        self.stack: Any = None
        self.receiver: Receiver | None = None
        self.failed = False
        self.stopped = False
        self.interrupted = False
        self.cpu = CpuMonitor()
        self.results: dict[str, Any] = {"environment": environment(), "config": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}

    def check_alive(self) -> None:
        dead = self.stack.dead_services() if self.stack else []
        if dead:
            sp = dead[0]
            raise RuntimeError(f"{sp.name} exited ({sp.process.returncode}); last lines of {sp.log_path}:\n"
                               f"{sp.log_tail()}")

    async def main(self) -> None:
        args = self.args
        from devstack._proc import free_port

        say(f"bench: data in {self.data_dir}; scenarios {','.join(args.only)}")
        self.receiver = Receiver.start(free_port())
        say(f"receiver on {self.receiver.base_url} (separate process)")
        self.stack, password = make_stack(self.data_dir, log_level=args.log_level, progress=say)
        await start_stack(self.stack)
        cpu = self.cpu
        cpu.track("bench", os.getpid())
        cpu.track("receiver", self.receiver.process.pid)
        for name, sp in self.stack.services.items():
            cpu.track(name, sp.process.pid if sp.process else None)
        if self.stack.broker is not None and self.stack.broker.process is not None:
            cpu.track("kafka", self.stack.broker.process.pid)
        if self.stack.postgres is not None:
            cpu.track("postgres", postmaster_pid(self.stack.postgres.pgdata))
        idle0 = cpu.snapshot()
        await asyncio.sleep(2.0)
        idle = CpuMonitor.usage(idle0, cpu.snapshot())
        self.results["idle_cpu"] = idle
        say(f"idle stack, 2s: {describe(idle)}")
        api = Api(self.stack, password)
        try:
            await api.login()
            bootstrap = self.stack.bootstrap_servers
            receiver = self.receiver
            steps = {
                "a": ("raw", f"(a) raw limit: {args.events:,} messages, bare aiokafka consumer -> aiohttp "
                             f"({args.concurrency} in flight)",
                      lambda: raw.run_raw(bootstrap, receiver, tenant_created_batch(args.events),
                                          in_flight=args.concurrency, cpu=cpu, progress=say)),
                "b": ("throughput", f"(b) dispatcher throughput: {args.events:,} tenant.created to one endpoint "
                                    f"(maxConcurrency {args.concurrency})",
                      lambda: scenarios.throughput(api, receiver, bootstrap, args.events,
                                                   max_concurrency=args.concurrency, timeout=240, progress=say,
                                                   cpu=cpu)),
                "d": ("latency", f"(d) latency: POST /api/platform/tenants at {args.rate:.0f}/s for "
                                 f"{args.seconds:.0f}s (+{args.warmup:.0f}s warm-up) -> webhook"
                                 + (f"; first {args.low_rate:.0f}/s for 5s (info)" if args.low_rate > 0 else ""),
                      lambda: scenarios.latency(api, receiver, rate=args.rate, seconds=args.seconds,
                                                warmup=args.warmup, progress=say, cpu=cpu,
                                                low_rate=args.low_rate)),
                "e": ("fanout", f"(e) fan-out: one tenant.updated to {args.fanout} endpoints, {args.repeats}x",
                      lambda: scenarios.fanout(api, receiver, bootstrap, endpoints=args.fanout,
                                               repeats=args.repeats, progress=say, cpu=cpu)),
                "f": ("hanging", f"(f) isolation: (d) again while another endpoint hangs (its requests "
                                 f"sleep {HANG_SECONDS:.0f}s)",
                      lambda: scenarios.hanging(api, receiver, rate=args.rate, seconds=args.seconds,
                                                warmup=args.warmup, progress=say, cpu=cpu,
                                                low_rate=args.low_rate)),
                "s": ("stripe", f"(s) Stripe webhook: ack latency at {args.stripe_rate:.0f} events/s for "
                                f"{args.seconds:.0f}s, then a burst of {args.stripe_burst:,} processed",
                      lambda: stripe_webhook.stripe_webhook(api, rate=args.stripe_rate, seconds=args.seconds,
                                                            burst=args.stripe_burst, progress=say, cpu=cpu)),
                "w": ("whatsapp", f"(w) WhatsApp inbound: signed Cloud API webhooks at {args.rate:.0f}/s for "
                                  f"{args.seconds:.0f}s -> acknowledgement, and -> agent reply at the provider",
                      lambda: whatsapp.inbound(api, rate=args.rate, seconds=args.seconds, warmup=args.warmup,
                                               progress=say, cpu=cpu)),
                "g": ("api_create", f"(g) API create: POST /api/platform/tenants vs bare FastAPI + asyncpg, "
                                    f"{api_speed.CLIENTS} clients",
                      lambda: api_speed.create_rate(api, seconds=args.api_seconds, warmup=1.0, cpu=cpu,
                                                    progress=say)),
                "h": ("api_list", f"(h) list pages at {args.list_rows:,} tenants and {api_speed.LEAD_ROWS:,} leads",
                      lambda: api_speed.list_pages(api, calls=100, cpu=cpu, progress=say, rows=args.list_rows)),
                "i": ("idle", f"(i) idle CPU of every service, {args.idle_seconds:.0f}s",
                      lambda: api_speed.idle(api, seconds=args.idle_seconds, cpu=cpu, progress=say)),
            }
            for key in RUN_ORDER:
                if key not in args.only:
                    continue
                name, title, step = steps[key]
                say(title)
                try:
                    self.results[name] = await step()
                except Exception:
                    # One scenario failing (e.g. an API error) does not cost the others their numbers.
                    self.failed = True
                    say(f"({key}) failed:\n{traceback.format_exc()}")
                    self.results.setdefault("errors", {})[key] = traceback.format_exc(limit=5)[-2000:]
                self.check_alive()  # a dead service ends the run
        finally:
            await api.close()

    async def shutdown(self) -> None:
        if self.receiver is not None:
            with contextlib.suppress(Exception):
                await self.receiver.release_hangs()
            with contextlib.suppress(Exception):
                await self.receiver.close()
        if self.stack is not None:
            say("stopping the stack")
            await self.stack.stop()
        if self.receiver is not None:
            self.receiver.stop()
        self.stopped = True

    async def run(self) -> None:
        try:
            async with asyncio.timeout(1200):
                await self.main()
        except (Exception, TimeoutError):
            self.failed = True
            say("bench failed:\n" + traceback.format_exc())
        finally:
            await self.shutdown()

    def finish(self) -> int:
        self.results["status"] = ("interrupted" if self.interrupted else "failed") if self.failed else "complete"
        lines = build_lines(self.results)
        print()
        status = self.results["status"]
        print(render(lines, f"Webhook dispatcher benchmark ({self.results['environment']['cpus']} cores, "
                            f"{time.monotonic() - T0:.0f}s" + ("" if status == "complete" else f", {status}") + ")"))
        cpu = render_cpu(self.results)
        if cpu:
            print(cpu)
        path = write_json(self.results, lines, self.args.json)
        print(f"results: {path}")
        if self.args.keep or self.failed:
            print(f"stack data and logs kept in {self.data_dir}")
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return 1 if self.failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = Run(args)
    try:
        try:
            import uvloop  # the services run on uvloop too (uvicorn's default when it is installed)
        except ImportError:
            asyncio.run(run.run())
        else:
            uvloop.run(run.run())
    except KeyboardInterrupt:
        run.failed = run.interrupted = True
        if run.stopped:
            say("interrupted; the stack was stopped")
        else:
            say("interrupted again: killing what is left")
        if run.stack is not None and not run.stopped:
            run.stack.kill()
            if run.stack.postgres is not None:
                with contextlib.suppress(Exception):
                    run.stack.postgres.stop()
        if run.receiver is not None:
            run.receiver.stop()
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
