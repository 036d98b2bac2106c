"""The exact curve against its oracle: a direct `OrderedDict` LRU replay of the same trace
(prefix lookups, tail-first touches) at every capacity tested, exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumetrics.kvsize import (
    Request,
    SyntheticChat,
    Trace,
    concat,
    exact_curve,
    prefix_distances,
    replay,
    synthetic_chunks,
)
from gpumetrics.kvsize.mrc import COLD, _count_greater


def _capacities(trace: Trace, count: int) -> list[int]:
    distinct = len(np.unique(trace.block_ids))
    grid = np.unique(np.geomspace(1, distinct + 1, count).astype(int))
    return [int(c) for c in grid]


def _assert_matches_replay(trace: Trace, capacities: list[int]) -> None:
    curve = exact_curve(trace)
    requests = trace.to_requests()
    for capacity in capacities:
        blocks, tokens = replay(requests, capacity, trace.block_size)
        got_blocks, got_tokens, _ = curve.hits(capacity)
        assert (float(got_blocks), float(got_tokens)) == (blocks, tokens), capacity


def test_hand_computed_trace() -> None:
    """Stack (most recent first) after each request, block size 4:
    [1,2,3] -> 1 2 3; [1,2,4] looks up d = 1, 2, cold -> 1 2 4 3; [5] -> 5 1 2 4 3;
    [1,2,3] looks up d = 2, 3, 5."""
    trace = Trace.from_requests(
        [Request((1, 2, 3), 12), Request((1, 2, 4), 12), Request((5,), 4), Request((1, 2, 3), 12)],
        block_size=4,
    )
    distance, distinct = prefix_distances(trace.refs())
    assert distinct == 5
    assert distance.tolist() == [COLD, COLD, COLD, 1, 2, COLD, COLD, 2, 3, 5]
    curve = exact_curve(trace)
    assert [float(curve.hits(c)[0]) for c in range(1, 7)] == [1, 3, 4, 4, 5, 5]
    assert curve.max_hit_ratio == 5 / 10
    _assert_matches_replay(trace, list(range(1, 7)))


def test_a_cached_block_after_a_miss_is_not_a_hit() -> None:
    """Why the criterion is the prefix maximum: block 2 is cached when [7, 2] arrives, but 7
    is not, so the prefix stops there (ids that are not chained hashes allow this)."""
    trace = Trace.from_requests([Request((1, 2), 8), Request((7, 2), 8)], block_size=4)
    distance, _ = prefix_distances(trace.refs())
    assert distance.tolist() == [COLD, COLD, COLD, COLD]
    _assert_matches_replay(trace, [1, 2, 3, 10])


def test_partial_and_missing_blocks_count_their_tokens() -> None:
    """Token weights: the last listed block holds what is left of the prompt; a prompt
    longer than its blocks (engines hash full blocks only) is queried but never hit there."""
    trace = Trace.from_requests(
        [Request((1, 2), 6), Request((1, 2), 6), Request((1,), 7)], block_size=4
    )
    curve = exact_curve(trace)
    blocks, tokens, _ = curve.hits(10)
    assert (float(blocks), float(tokens)) == (3, 4 + 2 + 4)
    assert curve.queried_tokens == 19
    assert curve.token_hit_ratio(10) == pytest.approx(10 / 19)
    _assert_matches_replay(trace, [1, 2, 3])


requests_strategy = st.lists(
    st.lists(st.integers(0, 12), min_size=0, max_size=6), min_size=1, max_size=40
)


@settings(max_examples=300, deadline=None)
@given(requests_strategy)
def test_any_trace_equals_replay_at_every_capacity(blocks: list[list[int]]) -> None:
    """Arbitrary ids: repeats inside a request, ids after different predecessors, empty
    requests; every capacity from 1 to one past the distinct blocks."""
    requests = [Request(tuple(b), 4 * len(b) + 1) for b in blocks]
    trace = Trace.from_requests(requests, block_size=4)
    _assert_matches_replay(trace, list(range(1, len({x for b in blocks for x in b}) + 2)))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 40), min_size=1, max_size=60),
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 41)), min_size=1, max_size=30),
)
def test_count_greater_equals_brute_force(
    values: list[int], queries: list[tuple[int, int]]
) -> None:
    ends = np.array([min(e, len(values)) for e, _ in queries], dtype=np.int64)
    thresholds = np.array([t for _, t in queries], dtype=np.int64)
    got = _count_greater(np.array(values, dtype=np.int64), ends, thresholds)
    want = [sum(1 for v in values[:e] if v > t) for e, t in zip(ends, thresholds, strict=True)]
    assert got.tolist() == want


def test_synthetic_chat_equals_replay_at_24_capacities() -> None:
    trace = concat(synthetic_chunks(SyntheticChat(conversations=2000, seed=7), references=30_000))
    assert 30_000 <= trace.references < 30_100
    _assert_matches_replay(trace, _capacities(trace, 24))


def test_whole_mooncake_trace_equals_replay_at_24_capacities(mooncake: Trace) -> None:
    _assert_matches_replay(mooncake, _capacities(mooncake, 24))


def test_mooncake_curve_facts(mooncake: Trace) -> None:
    """Independent counts: the infinite cache misses exactly the first sight of each block
    (the trace's ids are chained, so no block is cut off by a missing predecessor)."""
    curve = exact_curve(mooncake)
    distinct = len(np.unique(mooncake.block_ids))
    assert (mooncake.requests, mooncake.references, distinct) == (12_031, 288_500, 182_790)
    assert curve.max_hit_ratio == (288_500 - 182_790) / 288_500
    # Block 0 heads every request: a one-block cache hits it in all but the first.
    assert float(curve.hits(1)[0]) == 12_030
    reach = curve.capacity_reaching(0.9 * curve.max_hit_ratio)
    assert reach is not None
    assert curve.hit_ratio(reach) >= 0.9 * curve.max_hit_ratio > curve.hit_ratio(reach - 1)
