"""The torch side: WorkerRunner times the steps it says it times, with the cost model's FLOPs
and bytes of the work the scheduler really ran; calibration measures positive roofs."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'")

from gpumetrics.costmodel import PRESETS, RequestWork, step_cost
from gpumetrics.profile.measure import (
    DECODE,
    PREFILL,
    CellSkipped,
    CellSpec,
    NullWindow,
    StepPlan,
)
from gpumetrics.profile.sweep import blocks_needed
from gpumetrics.worker.calibrate import calibrate
from gpumetrics.worker.cell_runner import WorkerRunner

MODEL = PRESETS["tiny"]
PLAN = StepPlan(steps=3, warmup=1)


class CountingWindow(NullWindow):
    """Records begin/end calls (the window must bracket the timed steps only)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def begin(self) -> None:
        self.calls.append("begin")

    def end(self) -> None:
        self.calls.append("end")


@pytest.fixture(scope="module")
def runner() -> WorkerRunner:
    cells = [CellSpec(DECODE, 3, 40), CellSpec(PREFILL, 1, 48, 16)]
    return WorkerRunner(MODEL, cells, PLAN, block_size=8)


def test_decode_steps_are_the_whole_batch_at_the_asked_context(runner: WorkerRunner) -> None:
    cell = CellSpec(DECODE, 3, 40)
    window = CountingWindow()
    measured = runner.run(cell, PLAN, window)
    assert window.calls == ["begin", "end"]
    assert len(measured.steps) == 3
    for step in measured.steps:
        assert step.sequences == step.tokens == 3
        assert step.seconds > 0
        # Every sequence decodes one token at the step's context: the cost model agrees.
        assert step.context is not None
        assert step.context == int(step.context)
        cost = step_cost(
            MODEL, [RequestWork.decode(int(step.context))] * 3, dtype="fp32", kv_dtype="fp32"
        )
        assert step.flops == pytest.approx(cost.flops)
        assert step.bytes == pytest.approx(cost.bytes)
    contexts = [s.context for s in measured.steps]
    assert contexts == [40.0, 41.0, 42.0]  # the prompts were filled together
    assert measured.kv_used_blocks == 3 * -(-42 // 8)
    assert measured.kv_used_bytes == measured.kv_used_blocks * 8 * MODEL.kv_bytes_per_token("fp32")


def test_prefill_steps_compute_one_chunk_each(runner: WorkerRunner) -> None:
    measured = runner.run(CellSpec(PREFILL, 1, 48, 16), PLAN, NullWindow())
    assert [s.tokens for s in measured.steps] == [16, 16, 16]
    for step in measured.steps:
        assert step.sequences == 1
        assert step.context is None


def test_cells_beyond_the_pool_or_the_model_are_refused(runner: WorkerRunner) -> None:
    big = CellSpec(DECODE, 64, 40)
    assert blocks_needed(big, PLAN, 8) > runner.pool.blocks
    with pytest.raises(CellSkipped, match="KV blocks insufficient"):
        runner.run(big, PLAN, NullWindow())
    with pytest.raises(CellSkipped, match="max context 2048"):
        runner.run(CellSpec(DECODE, 1, 4000), PLAN, NullWindow())


def test_the_pool_is_sized_for_the_largest_cell(runner: WorkerRunner) -> None:
    pool = runner.pool
    assert pool.block_size == 8
    assert pool.blocks == blocks_needed(CellSpec(DECODE, 3, 40), PLAN, 8)
    assert pool.budget_blocks >= pool.blocks
    assert pool.bytes_per_token == MODEL.kv_bytes_per_token("fp32")
    assert runner.device.kind == "cpu"
    assert runner.device.dtype == "fp32"


def test_calibration_measures_positive_roofs() -> None:
    cal = calibrate("cpu", matmul_size=128, copy_bytes=1 << 20, trials=1)
    assert cal.device == "cpu"
    assert cal.dtype == "fp32"
    assert cal.matmul_size == 128
    assert cal.copy_bytes == 1 << 20
    assert cal.matmul_flops > 0
    assert cal.copy_bandwidth > 0
    assert cal.ridge == pytest.approx(cal.matmul_flops / cal.copy_bandwidth)
    with pytest.raises(ValueError, match="dtype"):
        calibrate("cpu", "int4")
