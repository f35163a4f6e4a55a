"""`make bench` / `python -m bench`: start the stack, run the scenarios, print the table, write JSON.

    python -m bench                      # everything (~3-5 min on 2 cores)
    python -m bench --only a,b           # some scenarios (c needs a and b, f compares with d)
    python -m bench --events 10000 --seconds 5 --keep
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench import raw, scenarios
from bench.kafka import tenant_created_batch
from bench.receiver import HANG_SECONDS, Receiver
from bench.report import build_lines, environment, render, write_json
from bench.stack import Api, start_stack

T0 = time.monotonic()
SCENARIOS = ("a", "b", "d", "e", "f")


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
    p.add_argument("--fanout", type=int, default=100, help="endpoints for (e) (default 100)")
    p.add_argument("--repeats", type=int, default=5, help="repetitions of (e) (default 5)")
    p.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the services (default INFO)")
    p.add_argument("--keep", action="store_true", help="keep the stack's data directory (logs) afterwards")
    p.add_argument("--json", type=Path, default=None, help="results file (default bench/results/latest.json)")
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.only if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    for name in ("events", "concurrency", "fanout", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
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
        self.stack, password = await start_stack(self.data_dir, log_level=args.log_level, progress=say)
        api = Api(self.stack, password)
        try:
            await api.login()
            bootstrap = self.stack.bootstrap_servers
            receiver = self.receiver
            if "a" in args.only:
                say(f"(a) raw limit: {args.events:,} messages, bare aiokafka consumer -> aiohttp "
                    f"({args.concurrency} in flight)")
                self.results["raw"] = await raw.run_raw(bootstrap, receiver, tenant_created_batch(args.events),
                                                        in_flight=args.concurrency, progress=say)
                self.check_alive()
            if "b" in args.only:
                say(f"(b) dispatcher throughput: {args.events:,} tenant.created to one endpoint "
                    f"(maxConcurrency {args.concurrency})")
                self.results["throughput"] = await scenarios.throughput(
                    api, receiver, bootstrap, args.events, max_concurrency=args.concurrency, timeout=240,
                    progress=say)
                self.check_alive()
            if "d" in args.only:
                say(f"(d) latency: POST /api/platform/tenants at {args.rate:.0f}/s for {args.seconds:.0f}s "
                    f"(+{args.warmup:.0f}s warm-up) -> webhook")
                self.results["latency"] = await scenarios.latency(api, receiver, rate=args.rate,
                                                                  seconds=args.seconds, warmup=args.warmup,
                                                                  progress=say)
                self.check_alive()
            if "e" in args.only:
                say(f"(e) fan-out: one tenant.updated to {args.fanout} endpoints, {args.repeats}x")
                self.results["fanout"] = await scenarios.fanout(api, receiver, bootstrap, endpoints=args.fanout,
                                                                repeats=args.repeats, progress=say)
                self.check_alive()
            if "f" in args.only:
                say(f"(f) isolation: (d) again while another endpoint hangs (its requests sleep "
                    f"{HANG_SECONDS:.0f}s)")
                self.results["hanging"] = await scenarios.hanging(api, receiver, rate=args.rate,
                                                                  seconds=args.seconds, warmup=args.warmup,
                                                                  progress=say)
                self.check_alive()
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
        lines = build_lines(self.results)
        print()
        print(render(lines, f"Webhook dispatcher benchmark ({self.results['environment']['cpus']} cores, "
                            f"{time.monotonic() - T0:.0f}s)"))
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
        run.failed = True
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
