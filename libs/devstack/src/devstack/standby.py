"""A service process started before it is needed: it imports the service's app and waits; told to go, it
serves exactly as ``python -m uvicorn <factory> --factory --host H --port P`` would.

Importing a service (FastAPI, SQLAlchemy, pydantic models, OpenTelemetry...) is most of its start: ~1.5 s
of CPU, 6 s on a busy 2-core machine. ``make run`` starts one of these per service before PostgreSQL, the
broker and the schema checks, so the imports overlap them instead of following them.

Usage (by :mod:`devstack.supervisor`): ``python -m devstack.standby <module:factory> --host H --port P``,
then one JSON line on stdin: ``{"env": {...}}`` -- the service's whole environment, which holds what was not
known yet when the process started (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS). End of input without that
line (the supervisor stopped or gave up) ends it without serving.
"""

from __future__ import annotations

import importlib
import json
import os
import sys


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    app = args[0]
    host, port = args[args.index("--host") + 1], int(args[args.index("--port") + 1])
    import uvicorn

    importlib.import_module(app.split(":", 1)[0])
    line = sys.stdin.readline()
    if not line.strip():
        return
    os.environ.clear()
    os.environ.update(json.loads(line)["env"])
    uvicorn.run(app, factory=True, host=host, port=port)


if __name__ == "__main__":
    main()
