"""The profile orchestration without torch: a sweep over an injected runner (the CLI injects the
worker's), calibration only when the roofs need it, and bad input named by its option."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace

import pytest

from gpumetrics.costmodel import ModelSpec
from gpumetrics.errors import ConfigError
from gpumetrics.profile.measure import Calibration, CellSpec, KvPool, StepPlan
from gpumetrics.profile.session import (
    CPU_NOTE,
    ProfileSetupError,
    WorkerParts,
    prepare_sweep,
    profile_sweep,
)
from gpumetrics.profile.sweep import CellRunner
from gpumetrics.settings import ProfileSettings

from .test_profile_sweep import FakeRunner

POOL = KvPool(64, 16, 1024.0, 64, "test budget")
CAL = Calibration("cpu", "fp32", 2e11, 5e10, 1024, 64 << 20, 3)
BASE = ProfileSettings(
    **{f.name: None for f in fields(ProfileSettings)}  # type: ignore[arg-type]
)
SWEEP = replace(
    BASE,
    device="cpu",
    model="tiny",
    batch=(1, 4),
    context=(32,),
    chunk=(),
    steps=4,
    warmup=2,
    block_size=16,
    calibrate=False,
    gpus=(),
    seed=0,
    fast_decode="off",
)


class _Parts:
    """Records what the session asked of the worker's torch side."""

    def __init__(self, *, fail: Exception | None = None) -> None:
        self.fail, self.built, self.calibrated = fail, [], []  # type: ignore[var-annotated]

    def runner(
        self,
        model: ModelSpec,
        cells: Sequence[CellSpec],
        plan: StepPlan,
        *,
        device: str,
        kv_blocks: int | None,
        block_size: int,
        dtype: str | None,
        fast_decode: str,
        seed: int,
    ) -> CellRunner:
        if self.fail is not None:
            raise self.fail
        self.built.append((model.name, tuple(c.label for c in cells), plan.steps, device))
        return FakeRunner(POOL)

    def calibrate(self, device: str, dtype: str) -> Calibration:
        self.calibrated.append((device, dtype))
        return CAL

    def worker(self) -> WorkerParts:
        return WorkerParts(
            check_device=lambda _: None,
            runner=self.runner,
            calibrate=self.calibrate,
            memory_free=lambda device: (1 << 40, f"{device} (free)"),
        )


def test_a_cpu_sweep_calibrates_runs_every_cell_and_reports() -> None:
    parts, said, ticks = _Parts(), [], []  # type: ignore[var-annotated]
    report = profile_sweep(
        prepare_sweep(SWEEP),
        parts.worker(),
        progress=lambda d, t, c: ticks.append((d, t)),
        say=said.append,
    )
    assert parts.built == [("tiny", ("b1/c32", "b4/c32"), 4, "cpu")]
    assert parts.calibrated == [("cpu", "bf16")]  # FakeRunner's device dtype
    assert said == ["calibrating: matmul FLOP/s and copy bandwidth..."]
    assert ticks == [(0, 2), (1, 2), (2, 2)]
    assert [r.cell.label for r in report.results] == ["b1/c32", "b4/c32"]
    assert report.calibration == CAL
    assert report.gpu_counters == CPU_NOTE
    assert any("calibrated automatically" in n for n in report.notes)


def test_given_peaks_need_no_calibration() -> None:
    parts = _Parts()
    given = replace(SWEEP, peak_flops=1e12, hbm_bandwidth=1e11)
    report = profile_sweep(prepare_sweep(given), parts.worker())
    assert parts.calibrated == []
    assert report.roofs is not None
    assert (report.roofs.reference.kind, report.roofs.reference.peak_flops) == ("user", 1e12)


def test_a_cell_too_big_for_the_pool_is_skipped_not_fatal() -> None:
    report = profile_sweep(prepare_sweep(replace(SWEEP, batch=(1, 512))), _Parts().worker())
    assert [r.numbers is None for r in report.results] == [False, True]
    assert (report.results[1].skipped or "").startswith("KV blocks insufficient")


def test_bad_input_is_refused_before_the_worker_is_touched() -> None:
    parts = _Parts(fail=AssertionError("the worker was asked for"))
    for settings in (replace(SWEEP, model="no-such-model"), replace(SWEEP, gpu="h200")):
        with pytest.raises(ConfigError):
            profile_sweep(prepare_sweep(settings), parts.worker())


@pytest.mark.parametrize(
    ("settings", "parts", "key", "problem"),
    [
        (replace(SWEEP, gpu="h200"), _Parts(), "--gpu", "a --device cpu run has none"),
        (replace(SWEEP, gpu="no-such-gpu"), _Parts(), "--gpu", "unknown GPU 'no-such-gpu'"),
        (replace(SWEEP, model="no-such-model"), _Parts(), "--model", "unknown model"),
        (SWEEP, _Parts(fail=ValueError("mixture-of-experts")), "--model", "mixture-of-experts"),
    ],
)
def test_bad_input_is_a_config_error_naming_the_option(
    settings: ProfileSettings, parts: _Parts, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        profile_sweep(prepare_sweep(settings), parts.worker())
    assert info.value.key == key
    assert problem in info.value.problem


def test_a_device_that_cannot_allocate_is_a_setup_error() -> None:
    with pytest.raises(ProfileSetupError, match="cannot set up the worker: out of memory"):
        profile_sweep(prepare_sweep(SWEEP), _Parts(fail=RuntimeError("out of memory")).worker())
