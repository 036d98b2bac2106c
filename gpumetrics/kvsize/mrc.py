"""The exact prefix-cache hit-ratio curve of a trace at every capacity, in one pass.

Cache model (docs/kv-size.md): requests arrive one at a time; a request hits the longest
prefix of its blocks that is cached, then touches all its blocks tail first (vLLM frees a
request's blocks in reverse, so a prefix's head is evicted last); one LRU list over blocks.

Why one pass gives every capacity (Mattson et al., 1970): every block of every request is
touched whether it hit or not, so the order of touches does not depend on the capacity, and
an LRU cache of C blocks always holds the C most recently touched distinct blocks. Let d_j be
the stack distance of a request's block j when the request arrives: 1 + the number of distinct
blocks touched since block j was last touched (∞ if never). Block j is cached at capacity C
iff d_j <= C, so block i of the request hits iff max(d_0..d_i) <= C: the hit criterion is the
prefix maximum D_i, and hits(C) = #{D_i <= C} is monotone in C. When ids are chained hashes
(each block implies its prefix), every predecessor of a block was touched after it, so d is
increasing along a request and D_i = d_i.

d_j = (s - p) - #{q < s : prev(q) > p}, where the request's touches start at position s of
the touch sequence, p is block j's last touch before s and prev(q) is the previous touch of
position q's block. The count is answered for all lookups at once by a wavelet matrix over
prev(): one stable partition and one prefix count per bit, O((N + Q) log N) in numpy, the
offline equivalent of Mattson's Fenwick tree over last-access times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .trace import F64, I64, References, Trace

IntArray = npt.NDArray[np.int32] | npt.NDArray[np.int64]

__all__ = ["COLD", "MissRatioCurve", "curve_from_distances", "exact_curve", "prefix_distances"]

COLD = np.iinfo(np.int64).max
"""Distance of a lookup that no cache can hit (its block, or one before it, is new)."""


def _count_greater(values: IntArray, ends: IntArray, thresholds: IntArray) -> I64:
    """For each query i: #{q < ends[i] : values[q] > thresholds[i]} (values, thresholds >= 0).
    Index arrays keep the dtype of `ends` (int32 halves the memory of large passes)."""
    count = np.zeros(len(ends), dtype=np.int64)
    if not len(ends) or not len(values):
        return count
    top = max(int(values.max()), int(thresholds.max())).bit_length()
    vals = values
    lo = np.zeros(len(ends), dtype=ends.dtype)
    hi = ends.copy()
    zeros = np.empty(len(values) + 1, dtype=ends.dtype)
    zeros[0] = 0
    for level in range(top - 1, -1, -1):
        bit = ((vals >> level) & 1).astype(bool)
        np.cumsum(~bit, out=zeros[1:])
        total_zeros = zeros[-1]
        query_bit = ((thresholds >> level) & 1).astype(bool)
        zlo, zhi = zeros[lo], zeros[hi]
        # Values whose bit is 1 where the threshold's is 0 (higher bits equal) are greater.
        count += np.where(query_bit, 0, (hi - lo) - (zhi - zlo))
        lo = np.where(query_bit, total_zeros + lo - zlo, zlo)
        hi = np.where(query_bit, total_zeros + hi - zhi, zhi)
        vals = np.concatenate((vals[~bit], vals[bit]))
    return count


def prefix_distances(refs: References) -> tuple[I64, int]:
    """(D, distinct blocks): D[k] is the smallest capacity at which lookup k hits (COLD if
    none), the prefix maximum of the stack distances described in the module doc.

    Positions are int32 below 2^31 lookups, and temporaries are dropped as soon as they are
    used: the peak is about 12 arrays of N words."""
    n = len(refs.ids)
    index: type[np.signedinteger[Any]] = np.int32 if n < 2**31 - 1 else np.int64
    lengths: IntArray = refs.lengths.astype(index)
    request = np.repeat(np.arange(len(lengths), dtype=index), lengths)
    starts = (np.cumsum(lengths, dtype=index) - lengths)[request]
    # Tail first: lookup k = starts + position is touched at starts + length - 1 - position.
    touch = 2 * starts + lengths[request] - 1 - np.arange(n, dtype=index)
    touched = np.empty_like(refs.ids)
    touched[touch] = refs.ids
    order = np.argsort(touched, kind="stable").astype(index)
    same = touched[order[1:]] == touched[order[:-1]]
    del touched
    prev: IntArray = np.full(n, -1, dtype=index)
    prev[order[1:][same]] = order[:-1][same]
    distinct = n - int(same.sum())
    del order, same
    last = prev[touch]
    del touch
    inside = last >= starts  # a block listed twice in one request: look further back
    while inside.any():
        last[inside] = prev[last[inside]]
        inside = last >= starts
    warm = last >= 0
    s, p = starts[warm], last[warm]
    del starts, last
    prev += 1
    counted = _count_greater(prev, s, p + 1)
    del prev
    distance = np.full(n, distinct + 1, dtype=np.int64)
    distance[warm] = (s - p) - counted
    del s, p, counted, warm
    if n:
        # Prefix maximum within each request: offset each request above all earlier ones.
        offset = request.astype(np.int64) * (distinct + 2)
        del request
        distance += offset
        np.maximum.accumulate(distance, out=distance)
        distance -= offset
        del offset
        distance[distance > distinct] = COLD
    return distance, distinct


@dataclass(frozen=True, slots=True)
class MissRatioCurve:
    """Hits against capacity, as a step function: at `capacities[i]` blocks and above, the
    cache hits `hit_blocks[i]` blocks (`hit_tokens[i]` tokens). Under sampling the counts are
    estimates for the whole trace. `hit_token_context` sums tokens x prompt length over hits
    (the attention part of the prefill FLOPs a hit saves grows with the prompt)."""

    capacities: F64
    hit_blocks: F64
    hit_tokens: F64
    hit_token_context: F64
    queried_blocks: float
    queried_tokens: float
    requests: int
    duration_s: float
    block_size: int
    distinct_blocks: float
    sample_rate: float = 1.0
    sampled_references: int = 0

    def _at(self, cumulative: F64, capacity: npt.ArrayLike) -> F64:
        c = np.asarray(capacity, dtype=np.float64)
        index = np.searchsorted(self.capacities, c, side="right") - 1
        safe = np.clip(index, 0, max(len(cumulative) - 1, 0))
        values = cumulative[safe] if len(cumulative) else np.zeros_like(c)
        return np.where(index >= 0, values, 0.0)

    def hits(self, capacity: npt.ArrayLike) -> tuple[F64, F64, F64]:
        """(hit blocks, hit tokens, hit token-context) at each capacity in blocks."""
        return (
            self._at(self.hit_blocks, capacity),
            self._at(self.hit_tokens, capacity),
            self._at(self.hit_token_context, capacity),
        )

    def hit_ratio(self, capacity: npt.ArrayLike) -> F64:
        """Hit blocks / queried blocks at each capacity (blocks)."""
        return self._at(self.hit_blocks, capacity) / max(self.queried_blocks, 1.0)

    def token_hit_ratio(self, capacity: npt.ArrayLike) -> F64:
        """Hit tokens / prompt tokens at each capacity (blocks)."""
        return self._at(self.hit_tokens, capacity) / max(self.queried_tokens, 1.0)

    @property
    def max_hit_ratio(self) -> float:
        """The hit ratio of an infinite cache (every block seen before, prefix included)."""
        top = float(self.hit_blocks[-1]) if len(self.hit_blocks) else 0.0
        return top / max(self.queried_blocks, 1.0)

    @property
    def max_token_hit_ratio(self) -> float:
        top = float(self.hit_tokens[-1]) if len(self.hit_tokens) else 0.0
        return top / max(self.queried_tokens, 1.0)

    @property
    def saturation(self) -> float:
        """The smallest capacity (blocks) that reaches the infinite-cache hit ratio."""
        return float(self.capacities[-1]) if len(self.capacities) else 0.0

    def capacity_reaching(self, hit_ratio: float) -> float | None:
        """The smallest capacity (blocks) whose block hit ratio is >= `hit_ratio`, or None."""
        need = hit_ratio * self.queried_blocks
        index = int(np.searchsorted(self.hit_blocks, need * (1 - 1e-12), side="left"))
        return float(self.capacities[index]) if index < len(self.capacities) else None


def curve_from_distances(
    distance: I64,
    refs: References,
    *,
    scale: float = 1.0,
    adjust: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> tuple[F64, F64, F64, F64]:
    """(capacities, cumulative hit blocks, tokens, token-context) from lookup distances.

    `scale` multiplies distances (into capacities) and counts: SHARDS at rate R uses 1/R.
    `adjust` is added to every cumulative count (SHARDS_adj), then clipped at 0."""
    finite = distance != COLD
    d = distance[finite]
    tokens = refs.tokens[finite].astype(np.float64)
    weights = [np.ones(len(d)), tokens, tokens * refs.context[finite]]
    if any(adjust):  # SHARDS_adj belongs to distance 1, whether or not a lookup has it
        d = np.concatenate(([1], d))
        weights = [np.concatenate(([0.0], w)) for w in weights]
    steps, inverse = np.unique(d, return_inverse=True)
    out = [np.cumsum(np.bincount(inverse, weights=w, minlength=len(steps))) for w in weights]
    capacities = steps.astype(np.float64) * scale
    return (
        capacities,
        np.maximum(out[0] * scale + adjust[0], 0.0),
        np.maximum(out[1] * scale + adjust[1], 0.0),
        np.maximum(out[2] * scale + adjust[2], 0.0),
    )


def exact_curve(trace: Trace) -> MissRatioCurve:
    """The exact curve of `trace` at every capacity (see the module doc)."""
    refs = trace.refs()
    distance, distinct = prefix_distances(refs)
    capacities, blocks, tokens, context = curve_from_distances(distance, refs)
    return MissRatioCurve(
        capacities=capacities,
        hit_blocks=blocks,
        hit_tokens=tokens,
        hit_token_context=context,
        queried_blocks=float(trace.references),
        queried_tokens=float(trace.queried_tokens),
        requests=trace.requests,
        duration_s=trace.duration_s(),
        block_size=trace.block_size,
        distinct_blocks=float(distinct),
        sampled_references=trace.references,
    )
