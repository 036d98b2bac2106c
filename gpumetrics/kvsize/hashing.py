"""Block hashing and SHARDS sampling decisions, standard library only (the live ghost cache
and the hooks use this module; `shards.mix64_array` is its numpy twin, tested equal).

* `chain_hashes`: vLLM's prefix-caching scheme. Token ids are cut into blocks of
  `block_size`; only full blocks get a hash, and block i's hash covers its parent's hash and
  its own tokens, h_i = H(h_{i-1}, tokens_i), so an id names the whole prefix up to and
  including that block. H is BLAKE2b-64 of the parent (8 bytes little-endian, 0 for the first
  block) and the tokens (8 bytes each, signed little-endian): stable across processes and
  Python versions (vLLM's default, sha256 over a pickle, is not needed for a trace).
* `mix64`: the splitmix64 finaliser, a bijection of 64-bit integers whose output bits look
  independent of the input's: SHARDS (Waldspurger et al., FAST'15) samples a block iff
  `mix64(id) >> 40 < T`, so the same block is always in or always out of the sample. A seed
  other than 0 XORs a constant into ids first: another sample, to see how much a curve moves.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

from ..errors import ConfigError

__all__ = [
    "MASK64",
    "SAMPLE_BITS",
    "chain_hashes",
    "effective_rate",
    "is_sampled",
    "mix64",
    "salt",
    "sample_threshold",
]

MASK64 = 0xFFFFFFFFFFFFFFFF
SAMPLE_BITS = 24
"""The sampling decision compares the top 24 bits of `mix64(id)` with a threshold."""

_SHIFT = 64 - SAMPLE_BITS
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def mix64(x: int) -> int:
    """splitmix64's finaliser of `x` modulo 2^64 (negative ids wrap, as two's complement)."""
    z = x & MASK64
    z = ((z ^ (z >> 30)) * _M1) & MASK64
    z = ((z ^ (z >> 27)) * _M2) & MASK64
    return z ^ (z >> 31)


def sample_threshold(rate: float) -> int:
    """The SHARDS threshold T for a sample rate in (0, 1]: sampled iff hash < T of 2^24.
    Rates below 2^-24 round up to one slot; a rate outside (0, 1] is a ConfigError."""
    if not 0.0 < rate <= 1.0:
        raise ConfigError("sample-rate", f"must be in (0, 1], got {rate}")
    return max(1, round(rate * (1 << SAMPLE_BITS)))


def effective_rate(threshold: int) -> float:
    """The sample rate a threshold really gives: T / 2^24 (scales capacities and counts)."""
    return threshold / (1 << SAMPLE_BITS)


def salt(seed: int) -> int:
    """What `seed` XORs into ids before hashing: 0 for seed 0 (the default sample), else a
    mixed constant, so each seed draws a different, equally random sample of blocks."""
    return 0 if seed == 0 else mix64(seed + 0x9E3779B97F4A7C15)


def is_sampled(block_id: int, threshold: int, salt: int = 0) -> bool:
    """Whether SHARDS samples `block_id` at `threshold` (with `salt(seed)`)."""
    return (mix64(block_id ^ salt) >> _SHIFT) < threshold


def chain_hashes(tokens: Sequence[int], block_size: int) -> list[int]:
    """Chained hashes of the full blocks of `tokens` (a partial last block has none)."""
    if block_size <= 0:
        raise ConfigError("block_size", f"must be > 0, got {block_size}")
    out: list[int] = []
    parent = 0
    pack = struct.Struct(f"<{block_size}q").pack
    for start in range(0, len(tokens) - block_size + 1, block_size):
        digest = hashlib.blake2b(digest_size=8)
        digest.update(parent.to_bytes(8, "little"))
        digest.update(pack(*tokens[start : start + block_size]))
        parent = int.from_bytes(digest.digest(), "little")
        out.append(parent)
    return out
