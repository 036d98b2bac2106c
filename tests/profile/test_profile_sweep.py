"""The torch-free sweep: cell shapes, KV needs, skipping, progress, and GPU activity windows
over FakeNvml (the naive-vs-real contrast reaching the report)."""

from __future__ import annotations

from collections.abc import Iterator

import pynvml
import pytest

from gpumetrics.costmodel import PRESETS
from gpumetrics.profile.activity import GPM_MIN_SECONDS, NvmlSampler, activity_from
from gpumetrics.profile.analysis import Roof, Roofs
from gpumetrics.profile.measure import (
    DECODE,
    PREFILL,
    CellMeasurement,
    CellSkipped,
    CellSpec,
    DeviceInfo,
    KvPool,
    MeasureWindow,
    StepPlan,
    StepRecord,
)
from gpumetrics.profile.run import sweep_report
from gpumetrics.profile.sweep import (
    FILL_TOKENS,
    SkippedCell,
    blocks_needed,
    decode_max_tokens,
    prompt_tokens,
    run_sweep,
    step_budget,
    sweep_cells,
)
from gpumetrics.sources.nvml import NvmlSource
from gpumetrics.testing import FakeNvml, ManualClock
from gpumetrics.testing.workloads import STEADY, STEADY_RATES

PLAN = StepPlan(steps=4, warmup=2)


class FakeRunner:
    """Measures every cell as 4 steps of 1 ms; refuses cells listed in `oom`; advances
    `clock` by `seconds` between the window's begin and end."""

    def __init__(
        self, pool: KvPool, *, oom: tuple[CellSpec, ...] = (), clock: ManualClock | None = None
    ) -> None:
        self._pool, self._oom, self._clock = pool, oom, clock
        self.ran: list[CellSpec] = []

    @property
    def device(self) -> DeviceInfo:
        return DeviceInfo("cuda", "NVIDIA H200", "bf16", uuid=None)

    @property
    def pool(self) -> KvPool:
        return self._pool

    @property
    def notes(self) -> tuple[str, ...]:
        return ()

    def run(self, cell: CellSpec, plan: StepPlan, window: MeasureWindow) -> CellMeasurement:
        if cell in self._oom:
            raise CellSkipped("device out of memory: test")
        self.ran.append(cell)
        window.begin()
        if self._clock is not None:
            self._clock.advance(max(0.5, window.min_seconds))
        window.end()
        step = StepRecord(1e-3, 1e9, 1e8, cell.batch, cell.batch)
        return CellMeasurement(cell, (step,) * plan.steps, kv_used_blocks=1, kv_used_bytes=1.0)


def test_cells_are_decode_grid_then_prefill_chunks() -> None:
    cells = sweep_cells([4, 1, 4], [512, 128], [256, 64])
    assert [c.label for c in cells] == [
        "b1/c128",
        "b4/c128",
        "b1/c512",
        "b4/c512",
        "prefill k64/c128",
        "prefill k256/c128",
        "prefill k64/c512",
        "prefill k256/c512",
    ]
    # Enough prompts arrive together to fill a chunk: 256 / 128 = 2.
    assert cells[5] == CellSpec(PREFILL, 2, 128, 256)
    assert cells[6] == CellSpec(PREFILL, 1, 512, 64)
    with pytest.raises(ValueError, match="needs a chunk"):
        CellSpec(PREFILL, 1, 128)


def test_kv_needs_cover_prompt_fill_warmup_and_timed_steps() -> None:
    cell = CellSpec(DECODE, 4, 128)
    assert prompt_tokens(cell, PLAN) == 128 - 2 - 1  # first timed step attends to 128 tokens
    assert step_budget(cell) == FILL_TOKENS
    fill = -(-4 * 125 // FILL_TOKENS) + 1
    assert decode_max_tokens(cell, PLAN) == 1 + fill + 2 + 4
    per_sequence = 125 + decode_max_tokens(cell, PLAN)
    assert blocks_needed(cell, PLAN, 16) == 4 * -(-per_sequence // 16)
    prefill = CellSpec(PREFILL, 2, 128, 256)
    assert step_budget(prefill) == 256
    assert blocks_needed(prefill, PLAN, 16) == 2 * -(-129 // 16)


def test_cells_that_cannot_fit_are_skipped_and_the_rest_run() -> None:
    cells = sweep_cells([1, 4, 64], [128])
    big = cells[2]
    pool_blocks = blocks_needed(cells[1], PLAN, 16)
    pool = KvPool(pool_blocks, 16, 1024.0, pool_blocks, "test budget")
    runner = FakeRunner(pool, oom=(cells[0],))
    calls: list[tuple[int, int, str]] = []
    outcomes = run_sweep(
        runner,
        cells,
        PLAN,
        progress=lambda done, total, cell: calls.append((done, total, cell.label)),
    )
    assert runner.ran == [cells[1]]
    assert isinstance(outcomes[0], SkippedCell)
    assert outcomes[0].reason == "device out of memory: test"
    assert isinstance(outcomes[1], CellMeasurement)
    assert isinstance(outcomes[2], SkippedCell)
    need = blocks_needed(big, PLAN, 16)
    assert outcomes[2].reason.startswith(f"KV blocks insufficient: needs {need} blocks of 16")
    assert "test budget" in outcomes[2].reason
    assert calls == [(0, 3, "b1/c128"), (1, 3, "b4/c128"), (2, 3, "b64/c128"), (3, 3, "b64/c128")]


@pytest.fixture
def fake_nvml() -> Iterator[tuple[NvmlSource, ManualClock]]:
    """An H200 x 8 FakeNvml running steady memory-bound decode, and an NVML source on it."""
    before = pynvml.nvmlLib
    clock = ManualClock(1_000.0)
    fake = FakeNvml("h200x8", clock=clock, workload=STEADY).install()
    source = NvmlSource(xid=False)
    yield source, clock
    source.close()
    fake.uninstall()
    assert pynvml.nvmlLib is before


def test_gpu_windows_measure_each_cell_and_reach_the_verdict(
    fake_nvml: tuple[NvmlSource, ManualClock],
) -> None:
    source, clock = fake_nvml
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    sampler = NvmlSampler(source, gpus=("3",), clock=clock, sleep=sleep)
    cells = sweep_cells([1, 8], [256])
    pool = KvPool(10_000, 16, 32768.0, 10_000, "test")
    runner = FakeRunner(pool, clock=clock)
    outcomes = run_sweep(runner, cells, PLAN, window=sampler.window)
    # Back-to-back windows: the second begin() waited out NVML's minimum GPM interval.
    assert slept == [pytest.approx(GPM_MIN_SECONDS)]
    for outcome in outcomes:
        assert isinstance(outcome, CellMeasurement)
        assert outcome.gpu is not None
        assert outcome.gpu.tensor_active == pytest.approx(STEADY_RATES.tensor_active)
        assert outcome.gpu.dram_active == pytest.approx(STEADY_RATES.dram_active)
        assert outcome.gpu.sm_active == pytest.approx(STEADY_RATES.sm_active)
        assert outcome.gpu.utilization_naive == pytest.approx(STEADY_RATES.utilization_gpu)
        assert outcome.gpu.seconds == pytest.approx(0.5)
    report = sweep_report(
        outcomes,
        model=PRESETS["1b"],
        device=runner.device,
        roofs=Roofs(Roof("datasheet", 989.4e12, 4.8e12, "H200")),
        calibration=None,
        pool=pool,
        plan=PLAN,
        gpu_counters="sampled through NVML, with GPM",
        gpu_counters_available=True,
    )
    naive = next(line for line in report.verdict if "naive utilization reads" in line)
    assert naive.startswith("b1/c256: naive utilization reads 100% while tensor pipes are busy 22%")
    assert "DRAM active 81%" in naive


def test_activity_picks_the_gpu_asked_for(fake_nvml: tuple[NvmlSource, ManualClock]) -> None:
    source, clock = fake_nvml
    source.collect(clock())
    clock.advance(1.0)
    collection = source.collect(clock())
    one = activity_from(collection, 1.0, gpus=("0",))
    every = activity_from(collection, 1.0)
    assert one is not None
    assert every is not None
    assert one.tensor_active == every.tensor_active == pytest.approx(STEADY_RATES.tensor_active)
    assert activity_from(collection, 1.0, gpus=("99",)) is None
    assert activity_from(collection, 1.0, uuid="GPU-not-there") is None
