"""Introspection throttling: failed introspections (unknown, revoked, malformed keys) per client IP.

A token bucket in process memory, like the per-caller limit in `common.auth`: a client may fail
`per_minute` times in a burst, then once every 60/per_minute seconds. Each introspection takes a token
before it touches the database (so a burst of concurrent guesses cannot overdraw) and a successful one
gives it back: a service checking its callers' valid keys is never slowed down, one guessing keys is.
Each replica counts for itself.
"""

from __future__ import annotations

import time

MAX_CLIENTS = 100_000


class IntrospectionThrottle:
    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}

    def _tokens(self, ip: str, now: float) -> float:
        tokens, last = self._buckets.get(ip, (float(self.per_minute), now))
        return min(float(self.per_minute), tokens + (now - last) * self.per_minute / 60.0)

    def take(self, ip: str) -> int:
        """Takes a token: 0 when there was one, else whole seconds until there will be (nothing taken)."""
        now = time.monotonic()
        tokens = self._tokens(ip, now)
        if tokens < 1.0:
            self._buckets[ip] = (tokens, now)
            return max(1, int((1.0 - tokens) * 60.0 / self.per_minute + 0.999))
        if len(self._buckets) >= MAX_CLIENTS and ip not in self._buckets:
            self._buckets.clear()
        self._buckets[ip] = (tokens - 1.0, now)
        return 0

    def give_back(self, ip: str) -> None:
        now = time.monotonic()
        self._buckets[ip] = (min(float(self.per_minute), self._tokens(ip, now) + 1.0), now)
