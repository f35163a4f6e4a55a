"""A service process started before it is needed: it imports the service's app and waits; told to go, it
serves exactly as ``python -m uvicorn <factory> --factory --host H --port P`` would (through :mod:`devstack.serve`).

Importing a service (FastAPI, SQLAlchemy, pydantic models, OpenTelemetry...) is most of its start: 2.5-3 s
of CPU, 7-12 s of wall time on a busy 2-core machine. ``make run`` starts one per service before PostgreSQL,
the broker and the schema checks, so the imports overlap them; and the keeper keeps a spare per service
(``--spare``), so a service that dies is back without importing anything. (A spare imports at normal
priority: at niceness 10 one took over 30 s to import on the busy machine, and was still importing when
needed; once imported it waits without using any CPU.)

Usage (by :mod:`devstack.supervisor`): ``python -m devstack.standby [<module:factory> --factory] --host H
--port P [--spare]``, then JSON lines on stdin: ``{"app": "<module:factory>"}`` first when the factory is not
in the arguments (a spare: its command line must not be taken for the running service's), then
``{"env": {...}}`` -- the service's whole environment, which holds what was not known when the process
started (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS). End of input before that (the supervisor stopped) ends it.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

from setproctitle import setproctitle


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    host, port = args[args.index("--host") + 1], int(args[args.index("--port") + 1])
    app = args[0] if not args[0].startswith("--") else json.loads(sys.stdin.readline() or "{}").get("app")
    if not app:
        return
    from devstack import serve

    importlib.import_module(app.split(":", 1)[0])
    line = sys.stdin.readline()
    if not line.strip():
        return
    # From here on this process IS the service: show the command line it stands for, so whoever finds a service
    # by its command line (ps, pgrep -f, a chaos script) finds a restarted one too, spare or not. (Before the
    # environment is replaced: setproctitle takes its room from the original environment block.)
    setproctitle(" ".join(serve.argv(app, host, port)))
    os.environ.clear()
    os.environ.update(json.loads(line)["env"])
    serve.serve(app, host, port)


if __name__ == "__main__":
    main()
