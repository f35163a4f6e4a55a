"""Where the broker placed each outbox row a relay leader sent: per partition, the offsets it acknowledged
and the rows' `seq`, so that after a loss only the rows whose records the broker lost are sent again.

Kept in memory, for the leadership's lifetime (no outbox column, so no migration in every service): a
new leader knows only each partition's end when it began (`baseline`). A loss reaching below it concerns
records sent before, whose rows it cannot tell apart: then the caller re-sends every retained row not
known to be in the log. Memory: 16 bytes per row, at most `limit` rows per partition (the oldest are
forgotten, and the baseline moves up past them).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from dataclasses import dataclass, field

TRACKED_PER_PARTITION = 1_000_000


@dataclass
class Placements:
    """One partition's acknowledged records, in offset order."""

    baseline: int = 0  # offsets below it hold records this leadership did not send (or forgot)
    limit: int = TRACKED_PER_PARTITION
    offsets: array = field(default_factory=lambda: array("q"))
    seqs: array = field(default_factory=lambda: array("q"))

    def add(self, placed: list[tuple[int, int]]) -> None:
        """(offset, seq) pairs the broker acknowledged, in offset order, all past the ones kept."""
        for offset, seq in placed:
            self.offsets.append(offset)
            self.seqs.append(seq)
        if len(self.offsets) > self.limit:
            drop = len(self.offsets) - self.limit // 2
            self.baseline = max(self.baseline, self.offsets[drop])
            del self.offsets[:drop]
            del self.seqs[:drop]

    def cut(self, end: int) -> tuple[list[int], bool]:
        """The log now ends at `end`: forget what lay beyond. Returns the seqs of the rows whose records were
        lost, and whether records sent before this leadership (untracked) were lost too."""
        i = bisect_left(self.offsets, end)
        lost = self.seqs[i:].tolist()
        del self.offsets[i:]
        del self.seqs[i:]
        return lost, end < self.baseline

    def kept(self) -> list[int]:
        return self.seqs.tolist()
