"""The load generator's garbage collector, held off while it measures (as `timeit` does).

This process holds ~150,000 objects once the stack is up (its state, aiohttp, the fakes); a full collection of
them took 90 ms (measured with `gc.callbacks` during (w)). Meanwhile its event loop stood still: no call was
sent, and every call in flight counted the pause as the server's latency -- (w) showed a 140 ms gap in its sends
and 40 acknowledgements at 100-160 ms, the whole of its p99. What exists before a window is frozen (never walked
again) and the collector is off until the window ends; the garbage of a 10 s window is collected after it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def held() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
