"""The detail hooks against hand-counted scenarios, and their drops (never raising)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from gpumetrics.catalog import engine as cat
from gpumetrics.hooks import EngineMetrics
from gpumetrics.samples import HistogramValue
from gpumetrics.testing.sample_values import sample_values

from .helpers import counters

L = ("e0", "m0")
DETAIL = {
    cat.SPEC_DRAFTS, cat.SPEC_DRAFT_TOKENS, cat.SPEC_ACCEPTED_TOKENS, cat.SPEC_POSITION_ACCEPTED,
    cat.PROMPT_KV_TOKENS, cat.REQUEST_PREFILL_COMPUTED, cat.EXTERNAL_PREFIX_QUERIED,
    cat.EXTERNAL_PREFIX_HIT, cat.KV_EVICTED_TOKENS, cat.KV_LOADED_TOKENS, cat.PREEMPTED_TOKENS,
    cat.WAITING_BY_REASON, cat.SLEEP_STATE, cat.KV_BLOCK_LIFETIME, cat.KV_BLOCK_IDLE,
    cat.KV_BLOCK_REUSE_GAP,
}  # fmt: skip


def test_detail_families_are_absent_until_reported() -> None:
    exported = {name for name, _ in sample_values(EngineMetrics("e0", "m0").snapshot())}
    assert not exported & {spec.name for spec in DETAIL}


def test_spec_decode_scenario() -> None:
    m = EngineMetrics("e0", "m0")
    # step 1: 4 sequences draft 3 tokens each; accepted 3, 2, 0, 1 -> 6; per position:
    # position 0 accepted by the 3 sequences that accepted any, position 1 by 2, position 2 by 1
    m.record_spec_decode(
        drafts=4, draft_tokens=12, accepted_tokens=6, accepted_per_position=[3, 2, 1]
    )
    # step 2: 2 sequences, 2 draft tokens each, accepted 1 and 0; per position given 1 deep
    m.record_spec_decode(drafts=2, draft_tokens=4, accepted_tokens=1, accepted_per_position=[1])
    m.record_spec_decode(drafts=1, draft_tokens=3, accepted_tokens=0)  # no per-position
    got = sample_values(m.snapshot())
    assert got[(cat.SPEC_DRAFTS.name, L)] == 7
    assert got[(cat.SPEC_DRAFT_TOKENS.name, L)] == 19
    assert got[(cat.SPEC_ACCEPTED_TOKENS.name, L)] == 7
    positions = {k[1][2]: v for k, v in got.items() if k[0] == cat.SPEC_POSITION_ACCEPTED.name}
    assert positions == {"0": 4, "1": 2, "2": 1}
    assert m.hook_errors == 0


def test_numpy_integers_count_as_in_the_basic_hooks() -> None:
    np = pytest.importorskip("numpy")
    m = EngineMetrics("e0", "m0")
    m.record_spec_decode(drafts=np.int64(2), draft_tokens=np.int32(6), accepted_tokens=4)
    m.record_spec_decode(drafts=1, draft_tokens=np.float64(3.0), accepted_tokens=0)  # dropped
    got = sample_values(m.snapshot())
    assert (got[(cat.SPEC_DRAFTS.name, L)], got[(cat.SPEC_DRAFT_TOKENS.name, L)]) == (2, 6)
    assert m.hook_errors == 1


def test_prompt_origins_external_lookups_transfers_and_preempted_tokens() -> None:
    m = EngineMetrics("e0", "m0")
    m.record_prompt_tokens(computed=700, local_cache=300)  # request 1: 1000 tokens
    m.record_prompt_tokens(computed=20, local_cache=0, external=480)  # request 2: 500
    m.record_external_prefix_lookup(queried_tokens=500, hit_tokens=480)
    m.record_external_prefix_lookup(queried_tokens=1000, hit_tokens=0)
    m.record_kv_transfer(evicted_tokens=64)
    m.record_kv_transfer(evicted_tokens=32, loaded_tokens=48)
    m.record_preempted_tokens(130)
    m.record_preempted_tokens(70)
    m.set_waiting_by_reason(capacity=3, deferred=1)
    m.set_sleep_state({"awake": 1, "weights_offloaded": 1})
    got = sample_values(m.snapshot())
    assert got[(cat.PROMPT_KV_TOKENS.name, (*L, "computed"))] == 720
    assert got[(cat.PROMPT_KV_TOKENS.name, (*L, "local_cache"))] == 300
    assert got[(cat.PROMPT_KV_TOKENS.name, (*L, "external"))] == 480
    prefill = got[(cat.REQUEST_PREFILL_COMPUTED.name, L)]
    assert isinstance(prefill, HistogramValue)
    assert (prefill.count, prefill.sum) == (2, 720.0)
    bounds = cat.REQUEST_PREFILL_COMPUTED.buckets
    # 20 tokens: first in the bucket le=20; 700: le=1000 (the 1-2-5 bounds)
    assert prefill.counts[bounds.index(10.0)] == 0
    assert prefill.counts[bounds.index(20.0)] == 1
    assert prefill.counts[bounds.index(500.0)] == 1
    assert prefill.counts[bounds.index(1000.0)] == 2
    assert got[(cat.EXTERNAL_PREFIX_QUERIED.name, L)] == 1500
    assert got[(cat.EXTERNAL_PREFIX_HIT.name, L)] == 480
    assert got[(cat.KV_EVICTED_TOKENS.name, L)] == 96
    assert got[(cat.KV_LOADED_TOKENS.name, L)] == 48
    assert got[(cat.PREEMPTED_TOKENS.name, L)] == 200
    assert got[(cat.WAITING_BY_REASON.name, (*L, "capacity"))] == 3
    assert got[(cat.WAITING_BY_REASON.name, (*L, "deferred"))] == 1
    assert got[(cat.SLEEP_STATE.name, (*L, "awake"))] == 1
    assert got[(cat.SLEEP_STATE.name, (*L, "weights_offloaded"))] == 1
    assert got[(cat.SLEEP_STATE.name, (*L, "discard_all"))] == 0
    m.set_sleep_state({"discard_all": 2})  # a gauge: replaced whole
    got = sample_values(m.snapshot())
    assert got[(cat.SLEEP_STATE.name, (*L, "awake"))] == 0
    assert got[(cat.SLEEP_STATE.name, (*L, "discard_all"))] == 2


def test_block_residency_scenario() -> None:
    m = EngineMetrics("e0", "m0")
    m.record_block_residency(lifetime_s=12.0, idle_s=4.5, reuse_gaps_s=[0.3, 2])
    m.record_block_residency(lifetime_s=1, idle_s=1.0)  # idle == lifetime: never reused
    got = sample_values(m.snapshot())
    bounds = cat.KV_BLOCK_LIFETIME.buckets
    lifetime = got[(cat.KV_BLOCK_LIFETIME.name, L)]
    idle = got[(cat.KV_BLOCK_IDLE.name, L)]
    gaps = got[(cat.KV_BLOCK_REUSE_GAP.name, L)]
    assert isinstance(lifetime, HistogramValue)
    assert isinstance(idle, HistogramValue)
    assert isinstance(gaps, HistogramValue)
    assert (lifetime.count, lifetime.sum) == (2, 13.0)
    assert lifetime.counts[bounds.index(1.0)] == 1  # le is inclusive
    assert lifetime.counts[bounds.index(10.0)] == 1
    assert lifetime.counts[bounds.index(20.0)] == 2
    assert (idle.count, idle.sum) == (2, 5.5)
    assert idle.counts[bounds.index(2.0)] == 1
    assert idle.counts[bounds.index(5.0)] == 2
    assert (gaps.count, gaps.sum) == (2, pytest.approx(2.3))
    assert gaps.counts[bounds.index(0.2)] == 0
    assert gaps.counts[bounds.index(0.5)] == 1
    assert gaps.counts[bounds.index(2.0)] == 2


BAD_COUNTS: list[Any] = [-1, 2.0, True, math.nan, math.inf, None, "3", 10**400, object()]


def _calls(bad: Any) -> list[Callable[[EngineMetrics], None]]:
    return [
        lambda m: m.record_spec_decode(drafts=bad, draft_tokens=3, accepted_tokens=1),
        lambda m: m.record_spec_decode(drafts=1, draft_tokens=bad, accepted_tokens=1),
        lambda m: m.record_spec_decode(drafts=1, draft_tokens=3, accepted_tokens=bad),
        lambda m: m.record_spec_decode(
            drafts=1, draft_tokens=3, accepted_tokens=1, accepted_per_position=[bad]
        ),
        lambda m: m.record_prompt_tokens(computed=bad, local_cache=0),
        lambda m: m.record_prompt_tokens(computed=1, local_cache=bad),
        lambda m: m.record_prompt_tokens(computed=1, local_cache=0, external=bad),
        lambda m: m.record_external_prefix_lookup(queried_tokens=bad, hit_tokens=0),
        lambda m: m.record_external_prefix_lookup(queried_tokens=5, hit_tokens=bad),
        lambda m: m.record_kv_transfer(evicted_tokens=bad),
        lambda m: m.record_kv_transfer(loaded_tokens=bad),
        lambda m: m.record_preempted_tokens(bad),
        lambda m: m.set_waiting_by_reason(capacity=bad, deferred=0),
        lambda m: m.set_waiting_by_reason(capacity=0, deferred=bad),
        lambda m: m.set_sleep_state({"awake": bad}),
    ]


BAD_SECONDS: list[Any] = [-1, -0.5, True, math.nan, math.inf, None, "3", 10**400, object()]


def _timed_calls(bad: Any) -> list[Callable[[EngineMetrics], None]]:
    return [
        lambda m: m.record_block_residency(lifetime_s=bad, idle_s=0.0),
        lambda m: m.record_block_residency(lifetime_s=5.0, idle_s=bad),
        lambda m: m.record_block_residency(lifetime_s=5.0, idle_s=1.0, reuse_gaps_s=[1, bad]),
    ]


def _reported() -> EngineMetrics:
    """An instance with every detail family reported once (so a drop is visible)."""
    m = EngineMetrics("e0", "m0")
    m.record_spec_decode(drafts=1, draft_tokens=3, accepted_tokens=1, accepted_per_position=[1])
    m.record_prompt_tokens(computed=1, local_cache=0)
    m.record_external_prefix_lookup(queried_tokens=1, hit_tokens=0)
    m.record_kv_transfer(evicted_tokens=1)
    m.record_preempted_tokens(1)
    m.set_waiting_by_reason(capacity=1, deferred=0)
    m.set_sleep_state({"awake": 1})
    m.record_block_residency(lifetime_s=1.0, idle_s=0.5)
    return m


def _histograms(m: EngineMetrics) -> dict[Any, Any]:
    return {k: v for k, v in sample_values(m.snapshot()).items() if isinstance(v, HistogramValue)}


@pytest.mark.parametrize("bad", BAD_COUNTS, ids=repr)
def test_bad_counts_are_dropped_whole_and_counted(bad: Any) -> None:
    for call in _calls(bad):
        m = _reported()
        before, hist = counters(m), _histograms(m)
        call(m)  # must not raise
        assert m.hook_errors == 1
        assert counters(m) == before
        assert _histograms(m) == hist


@pytest.mark.parametrize("bad", BAD_SECONDS, ids=repr)
def test_bad_seconds_are_dropped_whole_and_counted(bad: Any) -> None:
    for call in _timed_calls(bad):
        m = _reported()
        hist = _histograms(m)
        call(m)
        assert m.hook_errors == 1
        assert _histograms(m) == hist


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.record_spec_decode(drafts=1, draft_tokens=2, accepted_tokens=3),
        lambda m: m.record_spec_decode(
            drafts=2, draft_tokens=6, accepted_tokens=3, accepted_per_position=[2, 2]
        ),  # adds up to 4, not 3
        lambda m: m.record_spec_decode(
            drafts=1, draft_tokens=6, accepted_tokens=2, accepted_per_position=[2]
        ),  # a position accepted more than the drafts
        lambda m: m.record_spec_decode(
            drafts=1, draft_tokens=1, accepted_tokens=0, accepted_per_position=[0] * 65
        ),
        lambda m: m.record_spec_decode(
            drafts=1, draft_tokens=1, accepted_tokens=0, accepted_per_position="0"
        ),
        lambda m: m.record_external_prefix_lookup(queried_tokens=5, hit_tokens=6),
        lambda m: m.set_sleep_state({"asleep": 1}),
        lambda m: m.set_sleep_state([("awake", 1)]),
        lambda m: m.record_block_residency(lifetime_s=1.0, idle_s=2.0),
    ],
)
def test_invalid_combinations_are_dropped(call: Callable[[EngineMetrics], None]) -> None:
    m = _reported()
    before, hist = counters(m), _histograms(m)
    call(m)
    assert m.hook_errors == 1
    assert counters(m) == before
    assert _histograms(m) == hist
