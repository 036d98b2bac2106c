"""The roofline planner against independently computed decode steps and KV budgets."""

from __future__ import annotations

import math

import pytest

from gpumetrics.costmodel import PRESETS, ModelSpec
from gpumetrics.derive import Bound
from gpumetrics.hardware import GPUS, with_overrides
from gpumetrics.profile.planner import RooflinePlan, plan, plan_to_dict, verdict

GIB = 2**30
H200_MEMORY = 150_754_820_096  # NVML's total on a real H200
RESERVE_8B = GIB  # activations of an 8,192-token chunk (0.90 GiB) are under the 1 GiB floor

# Llama-3-8B: L=32, D=4096, Hq=32, Hkv=8, d=128, I=14336, V=128256; bf16 weights and KV.
PARAMS_8B = 8_030_261_248
PEAK_H200 = 989_400_000_000_000  # bf16 dense FLOP/s
BW_H200 = 4_800_000_000_000  # bytes/s


def _decode_8b(batch: int, context: int) -> tuple[int, int, int, int]:
    """(flops, weight bytes, KV read bytes, KV write bytes) of one decode step, by hand."""
    t = batch
    qkv = 2 * t * 4096 * (32 + 2 * 8) * 128 * 32
    o_proj = 2 * t * 32 * 128 * 4096 * 32
    attention = 4 * 32 * 128 * 32 * (batch * context)
    ffn = 2 * t * 4096 * 3 * 14336 * 32
    lm_head = 2 * batch * 4096 * 128256
    weights = (32 * (4096 * 48 * 128 + 32 * 128 * 4096 + 3 * 4096 * 14336) + 4096 * 128256) * 2
    kv_read = 2 * 8 * 128 * 2 * 32 * (batch * context)
    kv_write = 2 * t * 8 * 128 * 2 * 32
    return qkv + o_proj + attention + ffn + lm_head, weights, kv_read, kv_write


CAPACITY_8B_H200 = math.floor((H200_MEMORY * 0.9 - PARAMS_8B * 2 - RESERVE_8B) / 131072)
BATCHES = (1, 8, 64, 256)
CONTEXTS = (512, 4096)


def _compute_bound(flops: int, moved: int, peak: int, bw: int) -> bool:
    """flops/peak >= bytes/bw, in exact integer arithmetic."""
    return flops * bw >= moved * peak


def _crossover_8b(context: int) -> int | None:
    """Smallest batch whose decode step is compute-bound on the H200, by closed form.

    flops(b) = b·f, bytes(b) = W + b·k, compute-bound iff b·f·BW >= (W + b·k)·peak
    iff b·(f·BW − k·peak) >= W·peak.
    """
    f, w, kr, kw = _decode_8b(1, context)
    k = kr + kw
    slope = f * BW_H200 - k * PEAK_H200
    if slope <= 0:
        return None
    return -(-(w * PEAK_H200) // slope)


def test_capacity_by_hand() -> None:
    assert CAPACITY_8B_H200 == 904_427


def test_decode_numbers_by_hand() -> None:
    flops, weights, kv_read, kv_write = _decode_8b(1, 4096)
    assert flops == 17_156_800_512
    assert weights == 15_009_316_864
    assert kv_read == 536_870_912
    assert kv_write == 131_072


def test_crossover_by_hand() -> None:
    b = _crossover_8b(512)
    assert b is not None
    f, w, kr, kw = _decode_8b(b, 512)
    assert _compute_bound(f, w + kr + kw, PEAK_H200, BW_H200)
    f, w, kr, kw = _decode_8b(b - 1, 512)
    assert not _compute_bound(f, w + kr + kw, PEAK_H200, BW_H200)
    assert b == 2182
    # At 4k context KV reads grow as fast as FLOPs: decode never crosses the H200 ridge.
    assert _crossover_8b(4096) is None


@pytest.fixture(scope="module")
def plan_8b_h200() -> RooflinePlan:
    return plan(PRESETS["llama-3-8b"], GPUS["h200"], batches=BATCHES, contexts=CONTEXTS)


def test_plan_header(plan_8b_h200: RooflinePlan) -> None:
    p = plan_8b_h200
    assert p.tp == 1
    assert p.dtype == "bf16"
    assert p.kv_dtype == "bf16"
    assert p.memory_fraction == 0.9
    assert p.peak_flops == PEAK_H200
    assert p.bandwidth == BW_H200
    assert p.ridge == pytest.approx(PEAK_H200 / BW_H200)
    assert p.weight_bytes_per_gpu == PARAMS_8B * 2
    assert p.kv_bytes_per_token == 131072
    assert p.kv_budget_bytes == pytest.approx(H200_MEMORY * 0.9 - PARAMS_8B * 2 - RESERVE_8B)
    assert p.reserve.bytes == RESERVE_8B
    assert p.kv_capacity_tokens == CAPACITY_8B_H200


def test_plan_rows(plan_8b_h200: RooflinePlan) -> None:
    rows = {(r.batch, r.context): r for r in plan_8b_h200.rows}
    assert set(rows) == {(b, c) for b in BATCHES for c in CONTEXTS}
    for (b, c), row in rows.items():
        flops, weights, kv_read, kv_write = _decode_8b(b, c)
        moved = weights + kv_read + kv_write
        assert row.flops == flops, (b, c)
        assert row.weight_bytes == weights, (b, c)
        assert row.kv_read_bytes == kv_read, (b, c)
        assert row.kv_write_bytes == kv_write, (b, c)
        assert row.bytes == moved, (b, c)
        assert row.arithmetic_intensity == pytest.approx(flops / moved)
        step = max(flops / PEAK_H200, moved / BW_H200)
        assert row.predicted_step_seconds == pytest.approx(step, rel=1e-12)
        assert row.tokens_per_second == pytest.approx(b / step, rel=1e-12)
        expected_bound = (
            Bound.COMPUTE if _compute_bound(flops, moved, PEAK_H200, BW_H200) else Bound.MEMORY
        )
        assert row.bound is expected_bound, (b, c)
        assert row.kv_bytes == b * c * 131072, (b, c)
        assert row.fits == (b * c <= CAPACITY_8B_H200), (b, c)
    # Spot checks: everything in this sweep is memory-bound; 256 x 4k does not fit.
    assert all(r.bound is Bound.MEMORY for r in rows.values())
    assert not rows[(256, 4096)].fits
    assert rows[(64, 4096)].fits
    assert rows[(256, 512)].fits


def test_plan_marks_and_summaries(plan_8b_h200: RooflinePlan) -> None:
    rows = plan_8b_h200.rows
    assert not any(r.first_compute_bound for r in rows)
    largest = {(r.batch, r.context) for r in rows if r.largest_fitting}
    assert largest == {(256, 512), (64, 4096)}
    summaries = {s.context: s for s in plan_8b_h200.contexts}
    assert set(summaries) == set(CONTEXTS)
    for c in CONTEXTS:
        s = summaries[c]
        assert s.first_compute_bound_batch is None
        assert s.crossover_batch == _crossover_8b(c)
        assert s.max_batch_fits == CAPACITY_8B_H200 // c
    assert summaries[512].crossover_batch == 2182
    assert summaries[512].max_batch_fits == 1766
    assert summaries[4096].crossover_batch is None
    assert summaries[4096].max_batch_fits == 220


def test_plan_to_dict_rows(plan_8b_h200: RooflinePlan) -> None:
    data = plan_to_dict(plan_8b_h200)
    rows = data["rows"]
    assert isinstance(rows, list)
    assert len(rows) == len(BATCHES) * len(CONTEXTS)
    required = {
        "batch",
        "context",
        "flops",
        "bytes",
        "arithmetic_intensity",
        "predicted_step_seconds",
        "bound",
        "kv_bytes",
        "fits",
    }
    for row in rows:
        assert required <= set(row)
        flops, weights, kv_read, kv_write = _decode_8b(row["batch"], row["context"])
        assert row["flops"] == flops
        assert row["bytes"] == weights + kv_read + kv_write
        assert row["bound"] in {"memory", "compute"}
        assert row["kv_bytes"] == row["batch"] * row["context"] * 131072


def test_verdict_one_sentence_per_context(plan_8b_h200: RooflinePlan) -> None:
    lines = verdict(plan_8b_h200)
    assert len(lines) == len(CONTEXTS)
    assert all(line.strip() for line in lines)
    short, long = lines
    assert "512" in short
    # The binding limit at 512 tokens is KV capacity: it would cross the ridge at batch 2182,
    # but KV only fits 1766 sequences (both computed by hand above).
    assert "2182" in short
    assert "1766" in short
    assert "4096" in long
    assert "memory" in long.lower()
    assert "220" in long


# ------------------------------------------------------------------------------------------
# tensor parallelism: FLOPs and weights split by tp, KV heads split up to Hkv = 8


@pytest.mark.parametrize(("tp", "kv_heads_per_gpu"), [(2, 4), (8, 1), (16, 1)])
def test_plan_tp_per_gpu(tp: int, kv_heads_per_gpu: int) -> None:
    p = plan(PRESETS["llama-3-8b"], GPUS["h200"], batches=[32], contexts=[2048], tp=tp)
    (row,) = p.rows
    flops, weights, kv_read, kv_write = _decode_8b(32, 2048)
    assert row.flops == pytest.approx(flops / tp)
    assert row.weight_bytes == pytest.approx(weights / tp)
    assert row.kv_read_bytes == pytest.approx(kv_read * kv_heads_per_gpu / 8)
    assert row.kv_write_bytes == pytest.approx(kv_write * kv_heads_per_gpu / 8)
    per_token = 2 * 32 * kv_heads_per_gpu * 128 * 2
    assert p.kv_bytes_per_token == per_token
    assert p.weight_bytes_per_gpu == pytest.approx(PARAMS_8B * 2 / tp)
    budget = H200_MEMORY * 0.9 - PARAMS_8B * 2 / tp - RESERVE_8B
    assert p.kv_capacity_tokens == math.floor(budget / per_token)
    assert row.kv_bytes == 32 * 2048 * per_token


# ------------------------------------------------------------------------------------------
# a synthetic GPU on which decode crosses the ridge at a batch computed by hand

# L=3, D=48, Hq=4, Hkv=2, d=16, I=80, V=100
TINY = ModelSpec(
    name="plan-tiny",
    layers=3,
    hidden=48,
    heads=4,
    kv_heads=2,
    head_dim=16,
    intermediate=80,
    vocab=100,
)


def test_synthetic_gpu_crossover() -> None:
    context = 8
    # Per decoded sequence at context 8:
    per_seq_flops = (
        2 * 48 * (4 + 4) * 16 * 3  # qkv      36,864
        + 2 * 4 * 16 * 48 * 3  # o_proj      18,432
        + 4 * 4 * 16 * 3 * 8  # attention     6,144
        + 2 * 48 * 3 * 80 * 3  # ffn         69,120
        + 2 * 48 * 100  # lm head             9,600
    )
    assert per_seq_flops == 140_160
    weights = (3 * (48 * 8 * 16 + 4 * 16 * 48 + 3 * 48 * 80) + 48 * 100) * 2
    assert weights == 134_016
    per_seq_kv = 2 * 2 * 16 * 2 * 3 * 8 + 2 * 2 * 16 * 2 * 3  # read 8 tokens, write 1
    assert per_seq_kv == 3_456
    # Ridge 20 FLOP/byte: compute-bound iff b·140,160 >= 20·(134,016 + b·3,456)
    # iff b >= 2,680,320 / 71,040 = 37.7 -> b = 38.
    peak, bandwidth = 1e12, 5e10
    expected = math.ceil(20 * weights / (per_seq_flops - 20 * per_seq_kv))
    assert expected == 38
    gpu = with_overrides(GPUS["h200"], peak_flops={"bf16": peak}, hbm_bandwidth=bandwidth)
    p = plan(TINY, gpu, batches=[1, 16, 37, 38, 64], contexts=[context])
    assert p.ridge == pytest.approx(20.0)
    (summary,) = p.contexts
    assert summary.crossover_batch == 38
    assert summary.first_compute_bound_batch == 38
    bounds = {r.batch: r.bound for r in p.rows}
    assert bounds == {
        1: Bound.MEMORY,
        16: Bound.MEMORY,
        37: Bound.MEMORY,
        38: Bound.COMPUTE,
        64: Bound.COMPUTE,
    }
    assert [r.batch for r in p.rows if r.first_compute_bound] == [38]
    for r in p.rows:
        assert r.flops == r.batch * per_seq_flops
        assert r.bytes == weights + r.batch * per_seq_kv
        assert r.predicted_step_seconds == pytest.approx(
            max(r.batch * per_seq_flops / peak, (weights + r.batch * per_seq_kv) / bandwidth)
        )
    # All of them fit in 141 GiB: the largest fitting is the largest swept.
    assert [r.batch for r in p.rows if r.largest_fitting] == [64]


def test_synthetic_gpu_crossover_outside_sweep() -> None:
    """The crossover is searched beyond the swept batches."""
    gpu = with_overrides(GPUS["h200"], peak_flops={"bf16": 1e12}, hbm_bandwidth=5e10)
    p = plan(TINY, gpu, batches=[1, 2, 4], contexts=[8])
    (summary,) = p.contexts
    assert summary.first_compute_bound_batch is None
    assert summary.crossover_batch == 38
