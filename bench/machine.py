"""Where the CPU went during a scenario: per component of the stack, and what the rest of the machine used.

Linux `/proc` only (elsewhere every figure is empty). Each process is attributed to the nearest ancestor
among the roots given (a service's uvicorn process, the broker, the postmaster, the receiver, this
process), so a busy neighbour on a shared machine shows up as "others" instead of silently slowing
the numbers down. Percentages are of one core (200 % = both cores of a 2-core machine).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime + stime in ticks)."""
    out: dict[int, tuple[int, int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw.rpartition(")")[2].split()
        try:
            out[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
        except (IndexError, ValueError):
            continue
    return out


def _machine_busy() -> int:
    """Busy ticks of all CPUs together (everything but idle and iowait)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            parts = f.readline().split()[1:]
    except OSError:
        return 0
    values = [int(p) for p in parts[:8]]
    return sum(values) - values[3] - values[4]


def postmaster_pid(pgdata: Path | None) -> int | None:
    if pgdata is None:
        return None
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Snapshot:
    at: float
    busy: int
    groups: dict[str, int] = field(default_factory=dict)


class CpuMonitor:
    def __init__(self) -> None:
        self.roots: dict[int, str] = {}

    def track(self, name: str, pid: int | None) -> None:
        if pid:
            self.roots[pid] = name

    def snapshot(self) -> Snapshot:
        procs = _processes()
        busy = _machine_busy()
        groups: dict[str, int] = {}
        for pid, (_, ticks) in procs.items():
            group = self._group(pid, procs)
            if group is not None:
                groups[group] = groups.get(group, 0) + ticks
        return Snapshot(time.monotonic(), busy, groups)

    def _group(self, pid: int, procs: dict[int, tuple[int, int]]) -> str | None:
        seen = 0
        while pid > 1 and seen < 64:
            if pid in self.roots:
                return self.roots[pid]
            pid = procs.get(pid, (0, 0))[0]
            seen += 1
        return None

    @staticmethod
    def usage(start: Snapshot, end: Snapshot) -> dict[str, float]:
        """% of one core per group over the interval, plus `others` (the rest of the machine) and `total`.

        Processes that ended within the interval are missed (their ticks are gone), so `others` can be
        slightly high; it never goes below zero.
        """
        elapsed = end.at - start.at
        if elapsed <= 0 or not end.busy:
            return {}

        def pct(ticks: int) -> float:
            return round(100.0 * ticks / _TICK / elapsed, 1)

        out: dict[str, float] = {}
        ours = 0
        for name, ticks in end.groups.items():
            delta = max(0, ticks - start.groups.get(name, 0))
            ours += delta
            out[name] = pct(delta)
        total = max(0, end.busy - start.busy)
        out["others"] = pct(max(0, total - ours))
        out["total"] = pct(total)
        return dict(sorted(out.items(), key=lambda kv: (kv[0] in ("others", "total"), -kv[1])))


def describe(usage: dict[str, float]) -> str:
    if not usage:
        return "cpu: n/a"
    return "cpu % of a core: " + ", ".join(f"{k} {v:.0f}" for k, v in usage.items())
