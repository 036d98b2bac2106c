"""Hook accounting against hand-counted scenarios: a script of calls, exact expected values."""

from __future__ import annotations

import pytest

from gpumetrics.catalog import engine as cat
from gpumetrics.hooks import EngineMetrics
from gpumetrics.samples import HistogramValue
from gpumetrics.testing.sample_values import sample_values

L = ("e0", "m0")


def _hist(got: object, counts: list[int], total: float, count: int) -> None:
    assert isinstance(got, HistogramValue)
    assert list(got.counts) == counts
    assert got.count == count
    assert got.sum == pytest.approx(total)


def test_fresh_instance_exports_zero_counters_and_no_unknown_gauges() -> None:
    m = EngineMetrics("e0", "m0")
    got = sample_values(m.snapshot())
    assert got[(cat.ENGINE_INFO.name, ("e0", "m0", "gpumetrics"))] == 1
    for phase in ("prefill", "decode", "mixed"):
        assert got[(cat.STEPS.name, (*L, phase))] == 0
    assert got[(cat.FLOPS.name, L)] == 0
    unknown = [cat.KV_USAGE, cat.KV_USED_BLOCKS, cat.KV_CAPACITY_BLOCKS, cat.KV_BLOCK_SIZE]
    unknown += [cat.RUNNING_SEQUENCES, cat.WAITING_REQUESTS, cat.MAX_BATCH_SEQUENCES]
    for spec in unknown:
        assert (spec.name, L) not in got, spec.name
    _hist(got[(cat.STEP_DURATION.name, L)], [0] * len(cat.STEP_BUCKETS), 0.0, 0)
    assert m.hook_errors == 0


def test_steps_scenario() -> None:
    m = EngineMetrics("e0", "m0", max_batch_sequences=4, max_batch_tokens=512)
    m.record_step(
        phase="prefill",
        sequences=2,
        prefill_tokens=300,
        decode_tokens=0,
        duration_s=0.02,
        flops=1e9,
        read_bytes=2e6,
        write_bytes=3e5,
    )
    for duration in (0.004, 0.004, 0.005):  # 0.005 sits on a bound: le is inclusive
        m.record_step(
            phase="decode",
            sequences=2,
            prefill_tokens=0,
            decode_tokens=2,
            duration_s=duration,
            flops=1e6,
            read_bytes=2e6,
            write_bytes=2e3,
        )
    m.record_step(
        phase="mixed",
        sequences=3,
        prefill_tokens=50,
        decode_tokens=2,
        duration_s=3.0,
        flops=5e8,
        read_bytes=2e6,
        write_bytes=1e5,
    )
    got = sample_values(m.snapshot())
    assert got[(cat.STEPS.name, (*L, "prefill"))] == 1
    assert got[(cat.STEPS.name, (*L, "decode"))] == 3
    assert got[(cat.STEPS.name, (*L, "mixed"))] == 1
    assert got[(cat.STEP_SEQUENCES.name, L)] == 2 + 3 * 2 + 3
    assert got[(cat.STEP_TOKENS.name, (*L, "prefill"))] == 350
    assert got[(cat.STEP_TOKENS.name, (*L, "decode"))] == 8
    assert got[(cat.STEP_BUSY.name, L)] == pytest.approx(3.033)
    assert got[(cat.FLOPS.name, L)] == pytest.approx(1e9 + 3e6 + 5e8)
    assert got[(cat.READ_BYTES.name, L)] == pytest.approx(10e6)
    assert got[(cat.WRITE_BYTES.name, L)] == pytest.approx(3e5 + 6e3 + 1e5)
    assert got[(cat.MAX_BATCH_SEQUENCES.name, L)] == 4
    assert got[(cat.MAX_BATCH_TOKENS.name, L)] == 512
    # bounds 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5; 3.0 is only in +Inf
    _hist(got[(cat.STEP_DURATION.name, L)], [0, 0, 3, 3, 4, 4, 4, 4, 4, 4, 4], 3.033, 5)
    assert m.hook_errors == 0


def test_kv_prefix_and_recompute_scenario() -> None:
    m = EngineMetrics("e0", "m0", kv_block_size=16, kv_capacity_blocks=100)
    got = sample_values(m.snapshot())
    assert got[(cat.KV_CAPACITY_BLOCKS.name, L)] == 100
    assert got[(cat.KV_BLOCK_SIZE.name, L)] == 16
    assert (cat.KV_USAGE.name, L) not in got
    m.record_kv(used_blocks=30, total_blocks=100, evictable_blocks=10)
    m.record_kv(used_blocks=50, total_blocks=120, evictable_blocks=5)
    m.record_prefix_lookup(queried_tokens=100, hit_tokens=60)
    m.record_prefix_lookup(queried_tokens=50, hit_tokens=0)
    m.record_eviction()
    m.record_eviction(3)
    m.record_preemption()
    m.record_preemption(2)
    m.record_recompute(64, flops=1.5e9)
    m.record_recompute(10)  # no model_spec: tokens counted, no FLOPs
    m.set_queue(5, 3)
    m.set_queue(waiting=4, running=2)
    got = sample_values(m.snapshot())
    assert got[(cat.KV_USED_BLOCKS.name, L)] == 50
    assert got[(cat.KV_CAPACITY_BLOCKS.name, L)] == 120
    assert got[(cat.KV_EVICTABLE_BLOCKS.name, L)] == 5
    assert got[(cat.KV_USAGE.name, L)] == pytest.approx(50 / 120)
    assert got[(cat.PREFIX_QUERIED.name, L)] == 150
    assert got[(cat.PREFIX_HIT.name, L)] == 60
    assert got[(cat.KV_EVICTED_BLOCKS.name, L)] == 4
    assert got[(cat.PREEMPTIONS.name, L)] == 3
    assert got[(cat.RECOMPUTED_TOKENS.name, L)] == 74
    assert got[(cat.RECOMPUTED_FLOPS.name, L)] == 1.5e9
    assert got[(cat.WAITING_REQUESTS.name, L)] == 4
    assert got[(cat.RUNNING_SEQUENCES.name, L)] == 2
    assert m.hook_errors == 0


def test_requests_scenario() -> None:
    m = EngineMetrics("e0", "m0")
    m.record_request_finished(
        ttft_s=0.05,
        inter_token_s=[0.001, 0.01, 0.3],
        e2e_s=0.8,
        prompt_tokens=100,
        cached_tokens=60,
        output_tokens=4,
    )
    m.record_request_finished(
        ttft_s=100.0,
        inter_token_s=None,
        e2e_s=0.1,
        prompt_tokens=50,
        cached_tokens=0,
        output_tokens=1,
    )
    m.record_request_finished(
        ttft_s=0.2, inter_token_s=(), e2e_s=0.2, prompt_tokens=7, cached_tokens=7, output_tokens=1
    )
    got = sample_values(m.snapshot())
    assert got[(cat.FINISHED_REQUESTS.name, L)] == 3
    assert got[(cat.PROMPT_TOKENS.name, L)] == 157
    assert got[(cat.PROMPT_CACHED_TOKENS.name, L)] == 67
    assert got[(cat.GENERATED_TOKENS.name, L)] == 6
    # TTFT bounds 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 20 40 80; 100 only in +Inf
    _hist(got[(cat.TTFT.name, L)], [0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2], 100.25, 3)
    # ITL bounds 0.001 0.0025 0.005 0.01 0.02 0.04 0.06 0.08 0.1 0.25 0.5 1 2.5
    _hist(got[(cat.ITL.name, L)], [1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3], 0.311, 3)
    # E2E bounds 0.1 0.25 0.5 1 2.5 5 10 20 40 60 120 300
    _hist(got[(cat.E2E.name, L)], [1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3], 1.1, 3)
    assert m.hook_errors == 0


def test_histograms_use_the_catalog_buckets() -> None:
    got = sample_values(EngineMetrics("e0", "m0").snapshot())
    for spec in (cat.STEP_DURATION, cat.TTFT, cat.ITL, cat.E2E):
        value = got[(spec.name, L)]
        assert isinstance(value, HistogramValue)
        assert value.bounds == spec.buckets


def test_snapshot_follows_catalog_order_and_labels() -> None:
    m = EngineMetrics(
        "e0",
        "m0",
        max_batch_sequences=1,
        max_batch_tokens=1,
        kv_block_size=1,
        kv_predict_sample_rate=1.0,
    )
    m.record_kv(used_blocks=1, total_blocks=2)
    m.record_prefix_lookup(queried_tokens=2, hit_tokens=0, block_hashes=[7, 8])  # the ghost
    m.set_queue(0, 0)
    m.set_lora(max_lora=1)
    m.record_spec_decode(drafts=1, draft_tokens=2, accepted_tokens=1, accepted_per_position=[1])
    m.record_prompt_tokens(computed=1, local_cache=1, external=0)
    m.record_external_prefix_lookup(queried_tokens=1, hit_tokens=1)
    m.record_kv_transfer(evicted_tokens=1, loaded_tokens=1)
    m.record_preempted_tokens(1)
    m.set_waiting_by_reason(capacity=0, deferred=0)
    m.set_sleep_state({"awake": 1})
    m.record_block_residency(lifetime_s=1.0, idle_s=0.5, reuse_gaps_s=[0.5])
    samples = m.snapshot()
    order = [spec.name for spec in cat.ALL]
    positions = [order.index(s.metric) for s in samples]
    assert positions == sorted(positions)
    exported = {s.metric for s in samples}
    assert exported == {spec.name for spec in cat.ALL} - {cat.ENGINE_GPU_INFO.name} - cat.PAGE_ONLY
    for sample in samples:
        assert len(sample.labels) == len(next(s for s in cat.ALL if s.name == sample.metric).labels)


def test_clock_is_injected() -> None:
    ticks = iter([1.0, 1.25])
    m = EngineMetrics("e0", "m0", clock=lambda: next(ticks))
    t0 = m.clock()
    m.record_step(
        phase="decode", sequences=1, prefill_tokens=0, decode_tokens=1, duration_s=m.clock() - t0
    )
    assert sample_values(m.snapshot())[(cat.STEP_BUSY.name, L)] == 0.25


def test_dropped_calls_are_exported_as_hook_errors() -> None:
    m = EngineMetrics("e0", "m0")
    assert sample_values(m.snapshot())[(cat.HOOK_ERRORS.name, L)] == 0
    m.record_eviction(-1)
    m.record_preemption(-2)
    assert m.hook_errors == 2
    assert sample_values(m.snapshot())[(cat.HOOK_ERRORS.name, L)] == 2
