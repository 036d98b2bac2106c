"""A seeded synthetic multi-turn chat trace in Mooncake's shape, for tests and benchmarks.

The model: a population of `conversations` chosen per request with Zipf-like popularity
(P(rank k) ∝ k^-zipf). Each conversation has, from a hash of its index, one of
`system_prompts` shared system prompts (`system_blocks` blocks), a first-turn history of 1-8
blocks, a growth of 1-4 blocks a turn and 2-15 turns before it starts over as a new
instance (a new chat). A request's prompt is the system prompt, then the instance's history
up to this turn, then a partial last block unique to the request, so ids are chained: each
id implies its prefix, as engine block hashes do. Arrivals are Poisson at `rate` requests/s.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .shards import mix64_array
from .trace import Trace

__all__ = ["SyntheticChat", "synthetic_chunks"]

_SYSTEM = np.uint64(1 << 63)
_UNIQUE = np.uint64(1 << 62)


@dataclass(frozen=True, slots=True)
class SyntheticChat:
    """Parameters of the synthetic chat load (see the module doc)."""

    conversations: int = 100_000
    zipf: float = 0.9
    system_prompts: int = 8
    system_blocks: int = 4
    block_size: int = 512
    rate: float = 20.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("conversations", "system_prompts", "system_blocks", "block_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, f"must be > 0, got {getattr(self, name)}")
        if self.rate <= 0 or self.zipf < 0:
            raise ConfigError("rate/zipf", "rate must be > 0 and zipf >= 0")


def synthetic_chunks(
    load: SyntheticChat, *, references: int, chunk_requests: int = 65_536
) -> Iterator[Trace]:
    """Chunks of whole requests; the last request brings the lookups to `references` or just
    past it."""
    rng = np.random.default_rng(load.seed)
    ranks = np.arange(1, load.conversations + 1, dtype=np.float64)
    cdf = np.cumsum(ranks**-load.zipf)
    cdf /= cdf[-1]
    turns = np.zeros(load.conversations, dtype=np.int64)
    serial = 0
    clock_ms = 0.0
    produced = 0
    bs, sys_blocks = load.block_size, load.system_blocks
    while produced < references:
        conv = np.minimum(np.searchsorted(cdf, rng.random(chunk_requests)), len(cdf) - 1)
        turn = turns[conv] + _rank_within(conv)
        turns += np.bincount(conv, minlength=load.conversations)
        mix = mix64_array(conv.astype(np.uint64)).astype(np.uint64)
        first = 1 + (mix % np.uint64(8)).astype(np.int64)
        growth = 1 + ((mix >> np.uint64(8)) % np.uint64(4)).astype(np.int64)
        life = 2 + ((mix >> np.uint64(16)) % np.uint64(14)).astype(np.int64)
        prompt = ((mix >> np.uint64(24)) % np.uint64(load.system_prompts)).astype(np.uint64)
        instance = conv.astype(np.uint64) + (turn // life).astype(np.uint64) * np.uint64(
            load.conversations
        )
        lengths = sys_blocks + first + (turn % life) * growth + 1  # + the partial last block
        requests = np.arange(serial, serial + chunk_requests, dtype=np.uint64)
        ids = _block_ids(lengths, sys_blocks, prompt, instance, requests)
        partial = (mix64_array(requests) % np.uint64(bs - 1 if bs > 1 else 1)).astype(np.int64)
        gaps = rng.exponential(1000.0 / load.rate, chunk_requests)
        stamps = clock_ms + np.cumsum(gaps)
        clock_ms = float(stamps[-1])
        chunk = Trace(
            ids,
            lengths,
            lengths * bs - partial,
            rng.integers(16, 1024, chunk_requests).astype(np.int64),
            np.floor(stamps),
            bs,
        )
        if produced + len(ids) > references:  # stop at the request that reaches the count
            keep = int(np.searchsorted(np.cumsum(lengths), references - produced)) + 1
            chunk = _head(chunk, keep)
        yield chunk
        serial += chunk_requests
        produced += chunk.references


def _head(trace: Trace, requests: int) -> Trace:
    """The first `requests` requests of a chunk."""
    blocks = int(trace.blocks_per_request[:requests].sum())
    return Trace(
        trace.block_ids[:blocks],
        trace.blocks_per_request[:requests],
        trace.input_lengths[:requests],
        trace.output_lengths[:requests],
        trace.timestamps_ms[:requests],
        trace.block_size,
    )


def _rank_within(values: np.ndarray) -> np.ndarray:
    """For each entry, how many earlier entries hold the same value."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    index = np.arange(len(values))
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    rank_sorted = index - np.maximum.accumulate(np.where(starts, index, 0))
    rank = np.empty_like(rank_sorted)
    rank[order] = rank_sorted
    return rank


def _block_ids(
    lengths: np.ndarray,
    sys_blocks: int,
    prompt: np.ndarray,
    instance: np.ndarray,
    requests: np.ndarray,
) -> np.ndarray:
    """System prompt ids, then the instance's history ids, then one id unique to the request."""
    request = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    position = (np.arange(int(lengths.sum())) - starts[request]).astype(np.uint64)
    ids = (instance[request] << np.uint64(16)) | position
    system = position < np.uint64(sys_blocks)
    ids[system] = _SYSTEM | (prompt[request][system] << np.uint64(16)) | position[system]
    last = starts + lengths - 1
    ids[last] = _UNIQUE | requests
    out: np.ndarray = ids.astype(np.uint64)
    return out
