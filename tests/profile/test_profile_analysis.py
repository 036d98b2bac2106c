"""Derived numbers, marks and the verdict on hand-made measurements whose answers are known."""

from __future__ import annotations

import pytest

from gpumetrics.costmodel import PRESETS, decode_batch
from gpumetrics.derive import Bound
from gpumetrics.profile.analysis import (
    KNEE_GAIN,
    Mark,
    Roof,
    Roofs,
    analyze,
    cell_numbers,
    doubling_gain,
    find_knee,
)
from gpumetrics.profile.measure import (
    DECODE,
    PREFILL,
    CellMeasurement,
    CellSpec,
    GpuActivity,
    KvPool,
    StepPlan,
    StepRecord,
    percentile,
)
from gpumetrics.profile.sweep import SkippedCell, SweepOutcome, blocks_needed
from gpumetrics.profile.verdict import verdict

PEAK, BW = 1e12, 1e11  # ridge 10 FLOP/byte
ROOFS = Roofs(Roof("user", PEAK, BW, "test"))
PLAN = StepPlan(steps=2, warmup=1)
MODEL = PRESETS["tiny"]


def _measured(
    cell: CellSpec, *, intensity: float, tps: float, gpu: GpuActivity | None = None
) -> CellMeasurement:
    """Two identical steps: `cell.batch` tokens each, bytes 1e6, FLOPs = intensity x bytes,
    step time so that tokens/s = `tps`."""
    moved = 1e6
    seconds = cell.batch / tps
    step = StepRecord(seconds, intensity * moved, moved, cell.batch, cell.batch, cell.context)
    return CellMeasurement(
        cell, (step, step), kv_used_blocks=cell.batch, kv_used_bytes=1.0, gpu=gpu
    )


# Decode at context 128: intensity crosses the ridge (10) at batch 8; tokens/s stop scaling
# after batch 4 (+5.6 % from 4 to 8); batch 32 was skipped for KV.
C128 = {1: (1.0, 100.0), 2: (2.0, 190.0), 4: (5.0, 360.0), 8: (12.0, 380.0), 16: (20.0, 390.0)}
# Decode at context 1024: memory-bound everywhere, tokens/s doubling with batch.
C1024 = {1: (0.5, 100.0), 2: (0.9, 200.0), 4: (1.6, 400.0)}


def _outcomes() -> list[SweepOutcome]:
    out: list[SweepOutcome] = []
    for context, table in ((128, C128), (1024, C1024)):
        for batch, (intensity, tps) in table.items():
            out.append(_measured(CellSpec(DECODE, batch, context), intensity=intensity, tps=tps))
    out.append(SkippedCell(CellSpec(DECODE, 32, 128), "KV blocks insufficient: test"))
    return out


def _pool() -> KvPool:
    """A budget that holds batch 8 at context 128 and nothing larger."""
    budget = blocks_needed(CellSpec(DECODE, 8, 128), PLAN, 16)
    assert blocks_needed(CellSpec(DECODE, 16, 128), PLAN, 16) > budget
    return KvPool(budget, 16, 1024.0, budget, "test budget")


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_doubling_gain_normalises_uneven_steps() -> None:
    assert doubling_gain(1, 100.0, 2, 150.0) == pytest.approx(0.5)
    # 1 -> 4 is two doublings: x4 throughput is +100 % per doubling.
    assert doubling_gain(1, 100.0, 4, 400.0) == pytest.approx(1.0)
    assert doubling_gain(4, 100.0, 16, 100.0) == 0.0


def test_knee_is_the_first_point_after_which_doubling_gains_too_little() -> None:
    points = [(b, tps) for b, (_, tps) in C128.items()]
    knee = find_knee(points)
    assert knee is not None
    assert knee[0] == 4
    assert knee[1] == pytest.approx(380 / 360 - 1)
    assert find_knee([(1, 100.0), (2, 200.0), (4, 400.0)]) is None
    assert find_knee([(1, 100.0)]) is None
    # Just under and just over the threshold.
    assert find_knee([(1, 100.0), (2, 100.0 * (1 + KNEE_GAIN) * 0.999)]) == (
        1,
        pytest.approx(KNEE_GAIN * 0.999 - 0.001, abs=1e-3),
    )
    assert find_knee([(1, 100.0), (2, 100.0 * (1 + KNEE_GAIN) * 1.001)]) is None


def test_cell_numbers_follow_the_roofline_formulas() -> None:
    cell = CellSpec(DECODE, 4, 128)
    n = cell_numbers(_measured(cell, intensity=5.0, tps=400.0), ROOFS)
    seconds = 4 / 400.0
    assert n.step_p50 == n.step_p95 == n.step_mean == pytest.approx(seconds)
    assert n.tokens_per_second == pytest.approx(400.0)
    assert n.achieved_flops == pytest.approx(5e6 / seconds)
    assert n.achieved_bytes == pytest.approx(1e6 / seconds)
    assert n.intensity == pytest.approx(5.0)
    assert n.predicted_step_seconds == pytest.approx(max(5e6 / PEAK, 1e6 / BW))
    assert n.bound is Bound.MEMORY
    assert n.mfu == pytest.approx(5e6 / seconds / PEAK)
    assert n.mbu == pytest.approx(1e6 / seconds / BW)
    assert n.mfu_achievable is None
    assert n.roofline_fraction == pytest.approx(1e-5 / seconds)
    both = Roofs(ROOFS.reference, Roof("achievable", PEAK / 2, BW / 4, "measured"))
    n2 = cell_numbers(_measured(cell, intensity=5.0, tps=400.0), both)
    assert n2.mfu_achievable == pytest.approx(2 * n.mfu)
    assert n2.mbu_achievable == pytest.approx(4 * n.mbu)


def test_rates_use_the_median_step_so_one_hiccup_does_not_move_the_cell() -> None:
    cell = CellSpec(DECODE, 4, 128)
    fast = StepRecord(1e-3, 4e6, 1e6, 4, 4, 128.0)
    hiccup = StepRecord(50e-3, 4e6, 1e6, 4, 4, 128.0)
    measured = CellMeasurement(cell, (fast, fast, hiccup, fast, fast), 4, 1.0)
    n = cell_numbers(measured, ROOFS)
    assert n.step_p50 == pytest.approx(1e-3)
    assert n.step_p95 == pytest.approx(1e-3 + 0.8 * 49e-3)
    assert n.step_mean == pytest.approx(54e-3 / 5)
    assert n.tokens_per_second == pytest.approx(4000.0)
    assert n.achieved_flops == pytest.approx(4e9)
    assert n.roofline_fraction == pytest.approx(max(4e6 / PEAK, 1e6 / BW) / 1e-3)


def test_marks_and_group_summaries() -> None:
    results, groups = analyze(
        _outcomes(), ROOFS, pool=_pool(), plan=PLAN, model=MODEL, dtype="fp32"
    )
    marks = {(r.cell.context, r.cell.batch): r.marks for r in results}
    assert marks[(128, 8)] == {Mark.FIRST_COMPUTE_BOUND, Mark.LARGEST_FIT}
    assert marks[(128, 4)] == {Mark.KNEE}
    assert marks[(128, 16)] == frozenset()
    assert marks[(128, 32)] == frozenset()
    # The budget (8 sequences of ~130 tokens) holds one sequence of 1024 tokens, not two.
    assert marks[(1024, 1)] == {Mark.LARGEST_FIT}
    assert marks[(1024, 2)] == marks[(1024, 4)] == frozenset()
    fits = {(r.cell.context, r.cell.batch): r.fits for r in results}
    assert fits[(128, 8)]
    assert not fits[(128, 16)]
    assert not fits[(128, 32)]

    g128, g1024 = sorted(groups, key=lambda g: g.context)
    assert (g128.first_compute_bound, g128.knee, g128.largest_fit) == (8, 4, 8)
    assert g128.skipped == 1
    assert g128.bounds == (
        (1, Bound.MEMORY),
        (2, Bound.MEMORY),
        (4, Bound.MEMORY),
        (8, Bound.COMPUTE),
        (16, Bound.COMPUTE),
    )
    assert (g1024.first_compute_bound, g1024.knee, g1024.largest_fit) == (None, None, 1)
    assert g1024.top_gain == pytest.approx(1.0)
    # The same rule as the marks: the largest batch whose cell's blocks fit the budget.
    budget = _pool().budget_blocks
    assert blocks_needed(CellSpec(DECODE, g1024.max_batch_fits, 1024), PLAN, 16) <= budget
    assert blocks_needed(CellSpec(DECODE, g1024.max_batch_fits + 1, 1024), PLAN, 16) > budget
    assert g1024.max_batch_fits == 1
    assert g128.max_batch_fits is not None
    assert 8 <= g128.max_batch_fits < 16  # agrees with "largest fit" 8 and 16 not fitting

    # tiny's fp32 decode intensity at context 1024 tends to 1.64 FLOP/B < the ridge (10):
    # KV reads keep it memory-bound at any batch.
    assert g1024.crossover_batch is None


def test_verdict_names_the_regimes_with_their_numbers() -> None:
    pool = _pool()
    results, groups = analyze(_outcomes(), ROOFS, pool=pool, plan=PLAN, model=MODEL, dtype="fp32")
    lines = verdict(results, groups, ROOFS, pool, gpu_note="not available: test")
    text = "\n".join(lines)
    c128 = next(line for line in lines if line.startswith("decode at context 128"))
    assert "compute-bound from batch 8" in c128
    assert "ridge 10" in c128
    assert "throughput stops scaling past batch 4 (360 tokens/s; +6% per doubling" in c128
    assert f"holds batch ≤ {groups[0].max_batch_fits:,}" in c128
    c1024 = next(line for line in lines if line.startswith("decode at context 1024"))
    assert "memory-bound at every swept batch up to 4" in c1024
    assert "still scales at batch 4 (+100% tokens/s per doubling)" in c1024
    assert "GPU counters (NVML/GPM): not available: test." in text
    assert "1 cell(s) skipped — b32/c128: KV blocks insufficient: test." in text


def test_verdict_says_when_the_kv_budget_binds_before_the_ridge() -> None:
    low_ridge = Roofs(Roof("user", 1e12, 1e12, "ridge 1"))
    outcomes: list[SweepOutcome] = [
        _measured(CellSpec(DECODE, b, 1024), intensity=0.4 * b, tps=100.0 * b) for b in (1, 2)
    ]
    one = blocks_needed(CellSpec(DECODE, 1, 1024), PLAN, 16)  # one sequence of 1024 tokens
    pool = KvPool(one, 16, 1024.0, one, "tiny budget")
    results, groups = analyze(outcomes, low_ridge, pool=pool, plan=PLAN, model=MODEL, dtype="fp32")
    # The cost-model crossover, found by brute force rather than the planner's search.
    crossover = next(
        b
        for b in range(1, 1 << 16)
        if decode_batch(MODEL, b, 1024, dtype="fp32", kv_dtype="fp32").arithmetic_intensity >= 1
    )
    assert crossover > 1
    assert groups[0].crossover_batch == crossover
    assert groups[0].max_batch_fits == 1
    (line, *_) = verdict(results, groups, low_ridge, pool)
    assert f"the cost model puts the ridge at batch {crossover}" in line
    assert "KV budget holds only 1 sequences of 1024 tokens: KV capacity binds first" in line


def test_overhead_and_naive_vs_real_lines() -> None:
    busy = GpuActivity(tensor_active=0.05, dram_active=0.6, sm_active=0.7, utilization_naive=1.0,
                       seconds=0.5)  # fmt: skip
    outcomes: list[SweepOutcome] = [
        # 100x slower than the roofline: overhead-bound.
        _measured(CellSpec(DECODE, 1, 64), intensity=1.0, tps=1.0, gpu=busy),
        _measured(CellSpec(PREFILL, 1, 64, 64), intensity=50.0, tps=640.0),
    ]
    results, groups = analyze(outcomes, ROOFS, pool=_pool(), plan=PLAN, model=MODEL, dtype="fp32")
    lines = verdict(results, groups, ROOFS, _pool())
    assert any("overhead-bound" in line for line in lines)
    naive = next(line for line in lines if "naive utilization reads 100%" in line)
    assert "tensor pipes are busy 5% of the time, DRAM active 60%" in naive
    assert any(
        line.startswith("prefill at context 64: compute-bound from chunk 64") for line in lines
    )


@pytest.mark.parametrize("budget", [0, 40, 81, 128, 130, 200, 390, 1000, 5000])
def test_largest_fit_and_the_verdicts_batch_bound_agree(budget: int) -> None:
    """Whatever the budget: every swept batch up to the group's bound fits and is marked
    no higher than it, every batch above it does not fit, and the verdict quotes that bound.
    (130 blocks: a context-only count, 130 // 8, would claim batch 16 fits at context 128,
    but its cell needs 16 x 9 = 144 blocks; 128 at context 1024 likewise claims batch 2.)"""
    outcomes: list[SweepOutcome] = [
        _measured(CellSpec(DECODE, b, c), intensity=0.1 * b, tps=10.0 * b)
        for c in (128, 1024)
        for b in (1, 2, 4, 8, 16, 32)
    ]
    pool = KvPool(budget, 16, 1024.0, budget, "test budget")
    results, groups = analyze(outcomes, ROOFS, pool=pool, plan=PLAN, model=MODEL, dtype="fp32")
    lines = verdict(results, groups, ROOFS, pool)
    for g in groups:
        assert g.max_batch_fits is not None
        cells = [r for r in results if r.cell.context == g.context]
        for r in cells:
            assert r.fits == (r.cell.batch <= g.max_batch_fits), (g.context, r.cell.batch)
        marked = [r.cell.batch for r in cells if Mark.LARGEST_FIT in r.marks]
        expected = [b for b in (1, 2, 4, 8, 16, 32) if b <= g.max_batch_fits]
        assert marked == expected[-1:]
        assert g.largest_fit == (expected[-1] if expected else None)
        line = next(x for x in lines if x.startswith(f"decode at context {g.context}:"))
        if g.max_batch_fits:
            assert f"holds batch ≤ {g.max_batch_fits:,} at this context" in line
