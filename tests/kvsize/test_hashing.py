"""Block hashing and the SHARDS sampling decision (standard library), and its numpy twin."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpumetrics.errors import ConfigError
from gpumetrics.kvsize.hashing import (
    MASK64,
    chain_hashes,
    effective_rate,
    is_sampled,
    mix64,
    salt,
    sample_threshold,
)
from gpumetrics.kvsize.shards import mix64_array, sampled_mask


def test_mix64_is_splitmix64() -> None:
    """Vigna's splitmix64.c seeded with 1234567: each output is the finaliser of the state
    after adding the golden gamma, 6457827717110365317 first."""
    gamma = 0x9E3779B97F4A7C15
    state = 1234567
    outputs = []
    for _ in range(3):
        state = (state + gamma) & MASK64
        outputs.append(mix64(state))
    assert outputs == [6457827717110365317, 3203168211198807973, 9817491932198370423]


@given(st.lists(st.integers(-(2**63), 2**64 - 1), min_size=1, max_size=50), st.integers(0, 9))
def test_numpy_twin_agrees_with_the_stdlib_hash(ids: list[int], seed: int) -> None:
    array = np.array([x & MASK64 for x in ids], dtype=np.uint64)
    assert mix64_array(array).tolist() == [mix64(x) for x in ids]
    threshold = sample_threshold(0.3)
    mask = sampled_mask(array, threshold, salt(seed)).tolist()
    assert mask == [is_sampled(x, threshold, salt(seed)) for x in ids]


def test_sampled_share_is_the_rate() -> None:
    ids = np.arange(1_000_000, dtype=np.uint64) << np.uint64(16)  # structured ids
    threshold = sample_threshold(0.01)
    share = float(sampled_mask(ids, threshold).mean())
    assert abs(share - effective_rate(threshold)) < 4 * (0.01 * 0.99 / 1e6) ** 0.5


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5, float("nan"), float("inf")])
def test_rate_outside_zero_one_is_an_error(rate: float) -> None:
    with pytest.raises(ConfigError, match=r"sample-rate: must be in \(0, 1\]"):
        sample_threshold(rate)


def test_rate_one_samples_everything() -> None:
    assert effective_rate(sample_threshold(1.0)) == 1.0
    assert all(is_sampled(x, sample_threshold(1.0)) for x in range(1000))


def test_chain_hashes_name_the_whole_prefix() -> None:
    tokens = list(range(40))
    hashes = chain_hashes(tokens, 16)
    assert len(hashes) == 2  # full blocks only: 40 tokens = 2 blocks of 16 + 8 unhashed
    assert chain_hashes(tokens[:32], 16) == hashes
    changed = chain_hashes([999, *tokens[1:]], 16)
    assert changed[0] != hashes[0]
    assert changed[1] != hashes[1]
    tail = chain_hashes([*tokens[:16], 7, *tokens[17:]], 16)
    assert tail[0] == hashes[0]
    assert tail[1] != hashes[1]
    # the same block content after a different prefix is a different block
    assert chain_hashes(tokens[16:32], 16)[0] != hashes[1]
    assert all(0 <= h <= MASK64 for h in hashes)


def test_chain_hashes_are_blake2b_of_parent_and_tokens() -> None:
    """BLAKE2b, not Python's hash(): a recorded trace means the same thing in any process.
    Built here byte by byte: parent (8 bytes LE, 0 first), then each token as 8 bytes LE."""

    def h(parent: int, tokens: bytes) -> int:
        digest = hashlib.blake2b(parent.to_bytes(8, "little") + tokens, digest_size=8).digest()
        return int.from_bytes(digest, "little")

    first = h(0, bytes([1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]))
    second = h(first, bytes([3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]))
    assert chain_hashes([1, 2, 3, 4], 2) == [first, second]
