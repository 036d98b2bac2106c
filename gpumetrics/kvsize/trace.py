"""A prefix-block trace in memory: requests in arrival order, each a list of block ids.

Block `j` of a request holds its prompt tokens `[j·B, (j+1)·B)` (B = `block_size`); its id
names that block's KV, so equal ids mean reusable KV. Ids are 64-bit unsigned integers
(Mooncake's remapped hashes, our chained hashes). A request may list fewer blocks than its
prompt covers (engines hash only full blocks): the uncovered tail is queried but never hit.

`References` is the flat view the curve algorithms work on: one entry per block lookup, with
the tokens that block holds and its request's prompt length (for the prefill FLOPs saved).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError

__all__ = ["References", "Request", "Trace", "concat"]

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Request:
    """One request: block ids in prefix order, prompt and output lengths in tokens, arrival
    time in milliseconds."""

    block_ids: tuple[int, ...]
    input_length: int
    output_length: int = 0
    timestamp_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class References:
    """Block lookups, flat: `ids[k]` is looked up by the request that `lengths` assigns it to.

    `tokens[k]` is the tokens block k holds (its hit weight in tokens); `context[k]` is the
    prompt length of its request (the prefill FLOPs a hit saves grow with it).
    """

    ids: U64
    lengths: I64
    tokens: I64
    context: I64

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.tokens) != n or len(self.context) != n:
            raise ConfigError("references", "ids, tokens and context must have equal lengths")
        if int(self.lengths.sum()) != n:
            raise ConfigError("references", f"lengths sum to {self.lengths.sum()}, not {n}")

    def select(self, keep: npt.NDArray[np.bool_]) -> References:
        """The references where `keep` is true, still grouped by request (requests left with
        no reference keep a length of 0)."""
        request = np.repeat(np.arange(len(self.lengths)), self.lengths)
        lengths = np.bincount(request[keep], minlength=len(self.lengths)).astype(np.int64)
        return References(self.ids[keep], lengths, self.tokens[keep], self.context[keep])


@dataclass(frozen=True, slots=True)
class Trace:
    """A whole trace (or a chunk of whole requests) as numpy arrays; see the module doc."""

    block_ids: U64
    blocks_per_request: I64
    input_lengths: I64
    output_lengths: I64
    timestamps_ms: F64
    block_size: int

    def __post_init__(self) -> None:
        if self.block_size <= 0:
            raise ConfigError("block_size", f"must be > 0, got {self.block_size}")
        requests = len(self.blocks_per_request)
        if not len(self.input_lengths) == len(self.output_lengths) == len(self.timestamps_ms):
            raise ConfigError("trace", "per-request arrays must have equal lengths")
        if len(self.input_lengths) != requests:
            raise ConfigError("trace", "per-request arrays must have equal lengths")
        if int(self.blocks_per_request.sum()) != len(self.block_ids):
            raise ConfigError("trace", "blocks_per_request does not sum to the block ids")
        covered = -(-self.input_lengths // self.block_size)
        if requests and bool((self.blocks_per_request > covered).any()):
            raise ConfigError("trace", "a request lists more blocks than its prompt fills")

    @property
    def requests(self) -> int:
        return len(self.blocks_per_request)

    @property
    def references(self) -> int:
        """Block lookups in the trace (one per listed block of each request)."""
        return len(self.block_ids)

    @property
    def queried_tokens(self) -> int:
        """Prompt tokens of all requests (the token hit ratio's denominator)."""
        return int(self.input_lengths.sum())

    def duration_s(self) -> float:
        """Seconds from the first to the last arrival (0 for one instant)."""
        if not self.requests:
            return 0.0
        return float(self.timestamps_ms.max() - self.timestamps_ms.min()) / 1000.0

    def refs(self) -> References:
        """The flat lookup view, with each block's tokens: B, or what is left of the prompt."""
        lengths = self.blocks_per_request
        request = np.repeat(np.arange(self.requests), lengths)
        starts = np.cumsum(lengths) - lengths
        position = np.arange(self.references, dtype=np.int64) - starts[request]
        prompt = self.input_lengths[request]
        tokens = np.minimum(self.block_size, prompt - position * self.block_size)
        return References(self.block_ids, lengths, tokens.astype(np.int64), prompt)

    def to_requests(self) -> list[Request]:
        """The trace as `Request` objects (for replays and tests; O(references) objects)."""
        ids = self.block_ids.tolist()
        out = []
        start = 0
        for i, n in enumerate(self.blocks_per_request.tolist()):
            out.append(
                Request(
                    tuple(ids[start : start + n]),
                    int(self.input_lengths[i]),
                    int(self.output_lengths[i]),
                    float(self.timestamps_ms[i]),
                )
            )
            start += n
        return out

    @classmethod
    def from_requests(cls, requests: Sequence[Request], block_size: int) -> Trace:
        """Build a trace; ids are reduced modulo 2^64 (negative hashes wrap)."""
        ids = [b & 0xFFFFFFFFFFFFFFFF for r in requests for b in r.block_ids]
        return cls(
            np.array(ids, dtype=np.uint64),
            np.array([len(r.block_ids) for r in requests], dtype=np.int64),
            np.array([r.input_length for r in requests], dtype=np.int64),
            np.array([r.output_length for r in requests], dtype=np.int64),
            np.array([r.timestamp_ms for r in requests], dtype=np.float64),
            block_size,
        )


def concat(chunks: Iterable[Trace]) -> Trace:
    """One trace from chunks of whole requests (all of one block size)."""
    parts = list(chunks)
    if not parts:
        raise ConfigError("trace", "no chunks to join")
    sizes = {p.block_size for p in parts}
    if len(sizes) != 1:
        raise ConfigError("block_size", f"chunks disagree: {sorted(sizes)}")
    return Trace(
        np.concatenate([p.block_ids for p in parts]),
        np.concatenate([p.blocks_per_request for p in parts]),
        np.concatenate([p.input_lengths for p in parts]),
        np.concatenate([p.output_lengths for p in parts]),
        np.concatenate([p.timestamps_ms for p in parts]),
        parts[0].block_size,
    )
