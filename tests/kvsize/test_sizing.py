"""Pricing a curve: KV bytes, GPUs after weights and prefill FLOPs saved, each against a
hand computation or a direct per-request replay through the cost model."""

from __future__ import annotations

import itertools
import math

import pytest

from gpumetrics.costmodel import PRESETS, RequestWork, kv_capacity, step_cost
from gpumetrics.errors import ConfigError
from gpumetrics.hardware import find_gpu, with_overrides
from gpumetrics.kvsize import PrefixLru, Request, Trace, exact_curve, kv_costs, size
from gpumetrics.kvsize.sizing import default_capacities, smallest_tp

LLAMA70 = PRESETS["llama-3-70b"]
H200 = find_gpu("h200")


@pytest.mark.parametrize(("tp", "per_token"), [(1, 327_680), (2, 327_680), (16, 655_360)])
def test_kv_bytes_per_token_of_the_group(tp: int, per_token: int) -> None:
    """2 (K, V) x 80 layers x 8 KV heads x 128 x 2 bytes; past 8 GPUs heads are replicated:
    each of 16 GPUs keeps one head, so the group holds twice the bytes."""
    costs = kv_costs(LLAMA70, H200, tp=tp)
    assert costs.kv_bytes_per_token == per_token


def test_smallest_tp_that_fits() -> None:
    assert smallest_tp(LLAMA70, H200) == 2  # 141 GB of bf16 weights > 0.9 x 141 GiB
    assert smallest_tp(PRESETS["llama-3-8b"], H200) == 1
    tiny_gpu = with_overrides(H200, memory_bytes=1e9)
    assert smallest_tp(LLAMA70, tiny_gpu) is None


def _trace() -> Trace:
    """Requests list one block fewer than their prompt fills, so no request is all hit."""
    requests = [
        Request((1, 2, 3), 3 * 16 + 5, timestamp_ms=0),
        Request((1, 2, 4), 3 * 16 + 5, timestamp_ms=500),
        Request((1, 5), 2 * 16 + 7, timestamp_ms=1000),
        Request((1, 2, 3, 6), 4 * 16 + 9, timestamp_ms=1500),
        Request((1, 2, 4), 3 * 16 + 5, timestamp_ms=2000),
    ]
    return Trace.from_requests(requests, block_size=16)


@pytest.mark.parametrize("capacity", [1, 2, 3, 4, 6, 8])
def test_row_against_a_replay_through_the_cost_model(capacity: int) -> None:
    trace = _trace()
    costs = kv_costs(LLAMA70, H200, tp=2, kv_dtype="fp8")
    report = size(exact_curve(trace), capacities=[capacity], costs=costs)
    row = next(r for r in report.rows if r.capacity_blocks == capacity)
    cache = PrefixLru(capacity)
    saved = hit_blocks = hit_tokens = 0.0
    for request in trace.to_requests():
        hits = cache.access(request.block_ids)
        tokens = 16 * hits
        hit_blocks += hits
        hit_tokens += tokens
        prompt = request.input_length
        full = step_cost(LLAMA70, [RequestWork.prefill(prompt)]).flops
        saved += full - step_cost(LLAMA70, [RequestWork.prefill(prompt, tokens)]).flops
    assert row.hit_ratio == hit_blocks / 15  # 3 + 3 + 2 + 4 + 3 lookups
    assert row.token_hit_ratio == hit_tokens / (3 * 53 + 39 + 73)
    assert row.prefill_flops_saved_per_s == pytest.approx(saved / 2.0, rel=1e-12)
    tokens = capacity * 16
    assert row.capacity_tokens == tokens
    assert row.kv_bytes == tokens * 2 * 80 * 8 * 128 * 1  # fp8 KV
    group = kv_capacity(LLAMA70, H200.memory_bytes, kv_dtype="fp8", tp=2).tokens
    assert row.gpus == pytest.approx(2 * tokens / group)


def test_target_row_is_the_smallest_capacity_that_reaches_it() -> None:
    trace = _trace()
    curve = exact_curve(trace)
    report = size(curve, target=0.75)
    top = curve.max_hit_ratio
    assert report.target_row is not None
    assert report.target_row.is_target
    blocks = report.target_row.capacity_blocks
    assert curve.hit_ratio(blocks) >= 0.75 * top > curve.hit_ratio(blocks - 1)
    assert report.doubled_row is not None
    assert report.doubled_row.capacity_blocks == 2 * blocks
    assert [r.reaches_target for r in report.rows] == [
        bool(curve.hit_ratio(r.capacity_blocks) >= 0.75 * top) for r in report.rows
    ]
    assert report.request_rate == 5 / 2.0
    assert all(r.kv_bytes is None and r.gpus is None for r in report.rows)


def test_default_capacities_cover_the_curve() -> None:
    curve = exact_curve(_trace())
    points = default_capacities(curve)
    assert points[0] == 1
    assert points[-1] >= curve.saturation
    assert all(b == 2 * a for a, b in itertools.pairwise(points))


def test_model_without_gpu_prices_bytes_only() -> None:
    report = size(exact_curve(_trace()), capacities=[4], costs=kv_costs(LLAMA70, None))
    row = report.rows[0]
    assert row.kv_bytes == 64 * 327_680
    assert row.gpus is None


def test_weights_that_do_not_fit_give_infinite_gpus() -> None:
    report = size(exact_curve(_trace()), capacities=[4], costs=kv_costs(LLAMA70, H200, tp=1))
    assert report.rows[0].gpus == math.inf


def test_no_rate_without_duration() -> None:
    trace = Trace.from_requests([Request((1,), 20), Request((1,), 20)], block_size=16)
    report = size(exact_curve(trace), costs=kv_costs(LLAMA70, H200, tp=2))
    assert report.request_rate is None
    assert all(r.prefill_flops_saved_per_s is None for r in report.rows)


def test_nothing_to_hit_has_no_target() -> None:
    trace = Trace.from_requests([Request((1,), 20), Request((2,), 20)], block_size=16)
    report = size(exact_curve(trace))
    assert report.target_row is None
    assert report.curve.max_hit_ratio == 0


@pytest.mark.parametrize("target", [0.0, -1.0, 1.5])
def test_bad_target(target: float) -> None:
    with pytest.raises(ConfigError, match="target"):
        size(exact_curve(_trace()), target=target)


def test_zero_capacity_is_an_error() -> None:
    with pytest.raises(ConfigError, match="capacity: must be > 0"):
        size(exact_curve(_trace()), capacities=[0, 4])
