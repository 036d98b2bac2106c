"""Sampled curves: SHARDS (Waldspurger et al., "Efficient MRC Construction with SHARDS",
FAST'15) for traces too large for the exact pass.

A block is in the sample iff `mix64(id) >> 40 < T` (rate R = T / 2^24), so each block is
always in or always out. The sampled lookups form a trace of their own whose stack distances
are about R times the full trace's: a sampled lookup at distance d' predicts a hit at every
capacity >= d'/R blocks, and counts are scaled by 1/R. SHARDS_adj corrects the count of
sampled lookups to its expectation R·N by adding the difference to the first step (a hot
block that happens to be in, or out of, the sample otherwise skews the whole curve).

Prefix semantics under sampling: the exact hit criterion is the prefix maximum of stack
distances over a request's blocks (`mrc`), and unsampled blocks are not seen. For traces of
chained hashes, where each id implies its prefix, the maximum is the block's own distance, so
sampling loses nothing but resolution; for other traces the sampled maximum runs over the
sampled predecessors only. `SampledCurve.prefix_conflicts` counts sampled blocks seen after
more than one predecessor, so a report can say which case it is.

Memory is bounded by the sample: chunks are filtered as they stream in (about 40 bytes per
sampled lookup are kept), never joined whole.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import ConfigError
from .hashing import SAMPLE_BITS, effective_rate, salt, sample_threshold
from .mrc import MissRatioCurve, curve_from_distances, prefix_distances
from .trace import U64, References, Trace

__all__ = ["SampledCurve", "mix64_array", "sampled_curve", "sampled_mask"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix64_array(ids: U64) -> U64:
    """`hashing.mix64` over an array (uint64 arithmetic wraps modulo 2^64)."""
    z = ids.astype(np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def sampled_mask(ids: U64, threshold: int, salt: int = 0) -> np.ndarray:
    """Which ids SHARDS samples at `threshold` (`hashing.is_sampled` over an array)."""
    mixed = mix64_array(ids ^ np.uint64(salt) if salt else ids)
    return (mixed >> np.uint64(64 - SAMPLE_BITS)) < np.uint64(threshold)


class SampledCurve:
    """Streams chunks of whole requests in, keeps the sampled lookups, builds the curve."""

    def __init__(self, rate: float, seed: int = 0) -> None:
        self.threshold = sample_threshold(rate)
        self.rate = effective_rate(self.threshold)
        self.salt = salt(seed)
        self._parts: list[References] = []
        self.requests = 0
        self.block_size: int | None = None
        self.queried_blocks = 0
        self.queried_tokens = 0
        self.total_tokens_in_blocks = 0
        self.total_token_context = 0.0
        self._first_ms = float("inf")
        self._last_ms = float("-inf")
        self._preds: list[U64] = []
        self._firsts: list[np.ndarray] = []

    def add(self, chunk: Trace) -> None:
        """Take a chunk of whole requests (chunks must share one block size)."""
        if self.block_size is None:
            self.block_size = chunk.block_size
        elif chunk.block_size != self.block_size:
            raise ConfigError(
                "block_size", f"chunk has {chunk.block_size}, trace {self.block_size}"
            )
        if not chunk.requests:
            return
        refs = chunk.refs()
        self.requests += chunk.requests
        self.queried_blocks += chunk.references
        self.queried_tokens += chunk.queried_tokens
        self.total_tokens_in_blocks += int(refs.tokens.sum())
        self.total_token_context += float(np.dot(refs.tokens, refs.context.astype(np.float64)))
        self._first_ms = min(self._first_ms, float(chunk.timestamps_ms.min()))
        self._last_ms = max(self._last_ms, float(chunk.timestamps_ms.max()))
        keep = sampled_mask(refs.ids, self.threshold, self.salt)
        self._record_predecessors(refs, keep)
        kept = refs.select(keep)
        # Requests left without a sampled block change no distance: drop their entries.
        self._parts.append(
            References(kept.ids, kept.lengths[kept.lengths > 0], kept.tokens, kept.context)
        )

    def _record_predecessors(self, refs: References, keep: np.ndarray) -> None:
        """Keep each sampled lookup's predecessor id and whether it is a request's first
        block (9 bytes a kept lookup), for `prefix_conflicts`."""
        starts = np.cumsum(refs.lengths) - refs.lengths
        first = np.zeros(len(refs.ids), dtype=bool)
        first[starts[refs.lengths > 0]] = True
        before = np.empty_like(refs.ids)
        before[1:] = refs.ids[:-1]
        before[first] = 0
        self._preds.append(before[keep])
        self._firsts.append(first[keep])

    def prefix_conflicts(self) -> int:
        """Extra predecessors of sampled blocks: the number of distinct (block, predecessor)
        pairs minus the number of distinct blocks (0 when ids are chained hashes)."""
        if not self._parts:
            return 0
        ids = np.concatenate([p.ids for p in self._parts])
        preds = np.concatenate(self._preds)
        firsts = np.concatenate(self._firsts)
        order = np.lexsort((preds, firsts, ids))
        ids, preds, firsts = ids[order], preds[order], firsts[order]
        new_block = ids[1:] != ids[:-1]
        new_pair = new_block | (preds[1:] != preds[:-1]) | (firsts[1:] != firsts[:-1])
        return int(new_pair.sum()) - int(new_block.sum())

    def curve(self) -> MissRatioCurve:
        """The estimated curve of everything added so far (SHARDS_adj applied)."""
        if self.block_size is None or not self.requests:
            raise ConfigError("trace", "empty: no requests to build a curve from")
        refs = _join(self._parts)
        self._parts = [refs]  # drop the pieces: one copy of the sample from here on
        distance, distinct = prefix_distances(refs)
        scale = 1.0 / self.rate
        sampled_tokens = float(refs.tokens.sum())
        sampled_context = float(np.dot(refs.tokens, refs.context.astype(np.float64)))
        adjust = (
            self.queried_blocks - len(refs.ids) * scale,
            self.total_tokens_in_blocks - sampled_tokens * scale,
            self.total_token_context - sampled_context * scale,
        )
        capacities, blocks, tokens, context = curve_from_distances(
            distance, refs, scale=scale, adjust=adjust
        )
        return MissRatioCurve(
            capacities=capacities,
            hit_blocks=np.minimum(blocks, self.queried_blocks),
            hit_tokens=np.minimum(tokens, self.queried_tokens),
            hit_token_context=np.minimum(context, self.total_token_context),
            queried_blocks=float(self.queried_blocks),
            queried_tokens=float(self.queried_tokens),
            requests=self.requests,
            duration_s=max(self._last_ms - self._first_ms, 0.0) / 1000.0,
            block_size=self.block_size,
            distinct_blocks=distinct * scale,
            sample_rate=self.rate,
            sampled_references=len(refs.ids),
        )


def _join(parts: list[References]) -> References:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return References(np.zeros(0, dtype=np.uint64), empty, empty, empty)
    return References(
        np.concatenate([p.ids for p in parts]),
        np.concatenate([p.lengths for p in parts]),
        np.concatenate([p.tokens for p in parts]),
        np.concatenate([p.context for p in parts]),
    )


def sampled_curve(chunks: Iterable[Trace], rate: float, seed: int = 0) -> MissRatioCurve:
    """The SHARDS estimate of the curve of the trace made of `chunks`, at sample `rate`."""
    builder = SampledCurve(rate, seed)
    for chunk in chunks:
        builder.add(chunk)
    return builder.curve()
