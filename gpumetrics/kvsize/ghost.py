"""The live ghost cache: predicted prefix-cache hit ratios at other capacities, from the block
hashes an engine looks up. Standard library only, bounded memory, O(1) per unsampled block.

Each request's block hashes go through the SHARDS filter of `hashing` (the same blocks the
offline `shards.SampledCurve` keeps for the same rate and seed); the sampled ones visit one
ghost LRU per capacity C, of floor(C·R) sampled blocks, with the cache model's semantics
(`replay.PrefixLru`: longest cached prefix, then tail-first touches). The prediction at C is
SHARDS_adj's estimate: 1 - (sampled lookups that missed) / (R · all lookups), which equals the
offline sampled curve at C (tested). A capacity below 1/R blocks cannot be resolved: None.

Memory: the ghosts hold sum(floor(C·R)) entries at about `ENTRY_BYTES` each; when the
capacities asked for would exceed `max_bytes` (8 MiB by default), the sample rate is lowered
until they fit (`rate` says which one is in use).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from ..errors import ConfigError
from .hashing import MASK64, SAMPLE_BITS, effective_rate, salt, sample_threshold
from .replay import PrefixLru

__all__ = ["DEFAULT_MAX_BYTES", "ENTRY_BYTES", "GhostCache"]

DEFAULT_MAX_BYTES: Final = 8 * 1024 * 1024
ENTRY_BYTES: Final = 160
"""Bytes a ghost entry costs, upper bound: ~105 for the OrderedDict entry (measured with
tracemalloc, CPython 3.11), ~36 for a 64-bit int key, and slack for the table's growth."""

_M1: Final = 0xBF58476D1CE4E5B9
_M2: Final = 0x94D049BB133111EB
_SHIFT: Final = 64 - SAMPLE_BITS


class GhostCache:
    """Ghost LRUs at `capacities` (blocks of the real cache), fed one request at a time."""

    __slots__ = (
        "_ghosts",
        "_hits",
        "_salt",
        "capacities",
        "lookups",
        "rate",
        "sampled",
        "threshold",
    )

    def __init__(
        self,
        capacities: Sequence[float],
        *,
        rate: float = 0.01,
        seed: int = 0,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if not capacities or any(not c > 0 for c in capacities):
            raise ConfigError("capacity", f"need capacities > 0 blocks, got {list(capacities)}")
        if max_bytes <= 0:
            raise ConfigError("max_bytes", f"must be > 0, got {max_bytes}")
        threshold = sample_threshold(rate)
        entries = max_bytes // ENTRY_BYTES
        while threshold > 1 and self._entries(capacities, threshold) > entries:
            threshold = max(1, threshold * entries // self._entries(capacities, threshold))
        self.threshold = threshold
        self.rate = effective_rate(threshold)
        self.capacities = tuple(float(c) for c in capacities)
        sizes = [self._size(c, threshold) for c in capacities]
        self._ghosts = [PrefixLru(k) if k > 0 else None for k in sizes]
        self._hits = [0] * len(sizes)
        self._salt = salt(seed) & MASK64
        self.lookups = 0
        """Blocks looked up (all of them, sampled or not)."""
        self.sampled = 0
        """Sampled blocks looked up."""

    @staticmethod
    def _size(capacity: float, threshold: int) -> int:
        return math.floor(capacity * effective_rate(threshold) * (1 + 1e-12))

    @classmethod
    def _entries(cls, capacities: Sequence[float], threshold: int) -> int:
        return sum(cls._size(c, threshold) for c in capacities)

    def access(self, block_hashes: Sequence[int]) -> None:
        """One request's prefix lookup (its block hashes in prefix order), then its touches."""
        self.lookups += len(block_hashes)
        threshold, mix = self.threshold, self._salt
        sampled = []
        for block in block_hashes:
            z = (block ^ mix) & MASK64
            z = ((z ^ (z >> 30)) * _M1) & MASK64
            z = ((z ^ (z >> 27)) * _M2) & MASK64
            if z >> _SHIFT < threshold:  # == mix64(block ^ mix) >> 40: the last xor-shift
                sampled.append(block)  # of mix64 leaves the top 24 bits as they are
        if not sampled:
            return
        self.sampled += len(sampled)
        for i, ghost in enumerate(self._ghosts):
            if ghost is not None:
                self._hits[i] += ghost.access(sampled)

    def predicted_hit_ratio(self, index: int) -> float | None:
        """The estimated block hit ratio at `capacities[index]`, or None before any lookup or
        when the capacity is below the sample's resolution (1/rate blocks)."""
        if self._ghosts[index] is None or not self.lookups:
            return None
        misses = self.sampled - self._hits[index]
        return min(1.0, max(0.0, 1.0 - misses / (self.rate * self.lookups)))

    def predictions(self) -> list[tuple[float, float | None]]:
        """(capacity in blocks, predicted hit ratio or None) for every capacity."""
        return [(c, self.predicted_hit_ratio(i)) for i, c in enumerate(self.capacities)]

    @property
    def entries(self) -> int:
        """Blocks held by all ghosts now."""
        return sum(len(g) for g in self._ghosts if g is not None)

    @property
    def max_entries(self) -> int:
        """Blocks the ghosts can hold at most (x ENTRY_BYTES <= max_bytes)."""
        return sum(g.capacity for g in self._ghosts if g is not None)
