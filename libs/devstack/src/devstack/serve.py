"""Serve a service's app as ``python -m uvicorn <module:factory> --factory --host H --port P`` does, with a main
loop that sleeps instead of ticking.

uvicorn's own main loop wakes 10 times a second to see whether a signal asked it to stop (and to refresh the
``date`` header once a second): 0.15 % of a core per idle process here, ~1 % for the seven services of
``make run``. Here it wakes once a second (the ``date`` header is refreshed as often as before), and a signal
wakes it at once, so a stop is as prompt as uvicorn's.

Usage (by :mod:`devstack.supervisor` and :mod:`devstack.standby`): ``python -m devstack.serve <module:factory>
--factory --host H --port P``. The process shows uvicorn's command line, as a standby does, so whoever finds a
service by its command line (ps, pgrep -f, a chaos script) finds it however it was started. Unlike uvicorn's CLI
it reads no ``UVICORN_*`` environment variables (nothing sets them here): options go in ``serve``'s Config.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from types import FrameType

import uvicorn
from uvicorn.server import STARTUP_FAILURE

TICK = 1.0  # seconds between looks at the limits uvicorn checks on its tick; also the `date` header's refresh


class QuietServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._woken: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    async def main_loop(self) -> None:
        woken = asyncio.Event()
        self._woken = (asyncio.get_running_loop(), woken)
        counter = 0  # a multiple of 10: uvicorn's on_tick refreshes the date header on every call
        while not await self.on_tick(counter):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), TICK)
            counter = (counter + 10) % 864000

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._woken is not None:  # before the main loop runs, its first on_tick sees should_exit
            loop, woken = self._woken
            loop.call_soon_threadsafe(woken.set)


def serve(app: str, host: str, port: int) -> None:
    """What ``uvicorn.run(app, factory=True, host=host, port=port)`` does, with the quiet main loop."""
    server = QuietServer(uvicorn.Config(app, factory=True, host=host, port=port))
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def argv(app: str, host: str, port: int) -> list[str]:
    """The command line uvicorn's CLI would have for this service (what the process shows)."""
    return [sys.executable, "-m", "uvicorn", app, "--factory", "--host", host, "--port", str(port)]


def main(args: list[str] | None = None) -> None:
    from setproctitle import setproctitle

    args = list(sys.argv[1:] if args is None else args)
    host, port = args[args.index("--host") + 1], int(args[args.index("--port") + 1])
    setproctitle(" ".join(argv(args[0], host, port)))
    serve(args[0], host, port)


if __name__ == "__main__":
    main()
