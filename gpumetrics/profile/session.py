"""One `gpumetrics profile` run end to end, torch-free: settings in, a ProfileReport out.

`prepare_sweep` checks the inputs (model, `--gpu`, cells) before anything heavy loads;
`profile_sweep` opens NVML on CUDA, builds the runner, calibrates when the roofs need it,
runs the sweep and writes the report; `profile_attach` observes a running
engine over a window. The worker's torch side (device check, cell runner, calibration) is
passed in as `WorkerParts` by the CLI, which owns the terminal (progress, messages): profile
never imports the worker (tests/test_boundaries.py). Errors: ConfigError for bad input (the
CLI exits 2, naming the option in `key`), ProfileSetupError when the worker cannot be set up
(exit 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from ..costmodel import ModelSpec, find_model
from ..costmodel.fit import MemoryNeed, check_fit, host_memory_available
from ..engine_config import EngineConfig, GpuRef
from ..errors import ConfigError, GpumetricsError, UnavailableError
from ..hardware import GpuSpec, find_gpu, match_nvml_name
from ..settings import ProfileSettings
from .activity import NvmlSampler
from .analysis import Roofs
from .measure import Calibration, CellSpec, MeasureWindow, NullWindow, StepPlan
from .report import ProfileReport
from .run import attach_report, needs_calibration, resolve_roofs, sweep_report
from .sweep import CellRunner, run_sweep, sweep_cells, sweep_memory_need

if TYPE_CHECKING:
    from ..sources.nvml import NvmlSource

__all__ = [
    "CPU_NOTE",
    "ProfileSetupError",
    "RunnerFactory",
    "SweepRequest",
    "WorkerParts",
    "open_nvml",
    "prepare_sweep",
    "profile_attach",
    "profile_sweep",
]

#: Why a CPU sweep has no GPU counters.
CPU_NOTE: Final = "not available: the sweep runs on the CPU (NVML measures NVIDIA GPUs)"

Progress = Callable[[int, int, CellSpec], None]


class ProfileSetupError(GpumetricsError):
    """The worker could not be set up on the device (allocating the model or the KV pool)."""


class RunnerFactory(Protocol):
    """Builds the cell runner (the reference worker's `WorkerRunner`): ValueError for a model
    or device it cannot use, RuntimeError when allocating fails."""

    def __call__(
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
    ) -> CellRunner: ...


@dataclass(frozen=True, slots=True)
class WorkerParts:
    """The worker's torch side, injected: `check_device(device)` raises ValueError with a
    hint; `runner` builds the cells' runner; `calibrate(device, dtype)` measures the roofs;
    `memory_free(device)` is a CUDA device's free bytes and a label for messages."""

    check_device: Callable[[str], object]
    runner: RunnerFactory
    calibrate: Callable[[str, str], Calibration]
    memory_free: Callable[[str], tuple[int, str]]


def open_nvml() -> tuple[NvmlSource | None, str]:
    """An NVML source (`sources.nvml.NvmlSource`, no XID thread), or None; and a note saying
    what the GPU counters are (or why there are none)."""
    try:
        from ..sources.nvml import NvmlSource  # noqa: PLC0415 - loads pynvml's library

        source = NvmlSource(xid=False)
    except UnavailableError as exc:
        return None, f"not available ({exc.reason})"
    except (ImportError, OSError) as exc:
        return None, f"not available ({exc})"
    gpm = "with GPM" if source.gpm_enabled else "naive utilization only (no GPM on this GPU)"
    return source, f"sampled through NVML, {gpm}"


def _table_gpu(name: str | None) -> GpuSpec | None:
    if name is None:
        return None
    try:
        return find_gpu(name)
    except GpumetricsError as exc:
        raise ConfigError("--gpu", str(exc)) from None


def _model(name: str) -> ModelSpec:
    try:
        return find_model(name)
    except GpumetricsError as exc:
        raise ConfigError("--model", str(exc)) from None


@dataclass(frozen=True, slots=True)
class SweepRequest:
    """A sweep checked before anything heavy loads: the model, the table GPU (`--gpu`) and
    the cells the settings ask for."""

    settings: ProfileSettings
    model: ModelSpec
    gpu: GpuSpec | None
    cells: tuple[CellSpec, ...]
    need: MemoryNeed
    """The least the sweep allocates on its device (`profile.sweep.sweep_memory_need`)."""


def prepare_sweep(settings: ProfileSettings) -> SweepRequest:
    """Resolve and check a sweep's inputs without torch (ConfigError names the option)."""
    gpu = _table_gpu(settings.gpu)
    model = _model(settings.model)
    cells = sweep_cells(settings.batch, settings.context, settings.chunk)
    if gpu is not None and settings.device != "cuda":
        raise ConfigError(
            "--gpu",
            "--gpu picks a GPU's datasheet roofs; a --device cpu run has none (its roofs are "
            "calibrated, or give --peak-flops and --hbm-bandwidth)",
        )
    need = sweep_memory_need(
        model,
        cells,
        StepPlan(settings.steps, settings.warmup),
        dtype=settings.dtype or ("bf16" if settings.device == "cuda" else "fp32"),
        block_size=settings.block_size,
        kv_blocks=settings.kv_blocks,
    )
    if settings.device != "cuda" and not model.is_moe:  # MoE is refused later, fit or not
        # before torch loads: a model too big for this host fails in milliseconds
        available = host_memory_available()
        if available is not None:
            check_fit(model, need, available, where="this host (MemAvailable)")
    return SweepRequest(settings, model, gpu, cells, need)


def profile_sweep(
    request: SweepRequest,
    worker: WorkerParts,
    *,
    progress: Progress | None = None,
    say: Callable[[str], None] = lambda _: None,
    nvml: Callable[[], tuple[NvmlSource | None, str]] = open_nvml,
) -> ProfileReport:
    """Sweep the reference worker over the request's cells.

    `progress(done, total, cell)` before each cell and at the end; `say` gets what the run is
    doing between cells (calibration); `nvml` opens the GPU counters on CUDA."""
    s, model, gpu, cells = request.settings, request.model, request.gpu, request.cells
    cuda = s.device == "cuda"
    try:
        worker.check_device(s.device)
    except ValueError as exc:
        raise ConfigError("--device", str(exc)) from None
    if cuda and not model.is_moe:
        free, where = worker.memory_free(s.device)
        check_fit(model, request.need, free, where=where)
    source, gpu_note = nvml() if cuda else (None, CPU_NOTE)
    try:
        plan = StepPlan(s.steps, s.warmup, min_seconds=0.25 if source else 0.0)
        runner = _runner(worker, model, cells, plan, s)
        device, notes = runner.device, list(runner.notes)
        if cuda and gpu is None:
            gpu = match_nvml_name(device.name)
            if gpu is None:
                notes.append(f"{device.name!r} has no spec-table row: roofs are measured")
        calibration = None
        if s.calibrate or needs_calibration(gpu, s.peak_flops, s.hbm_bandwidth):
            if not s.calibrate:
                notes.append(
                    f"{device.name if cuda else 'this CPU'} has no datasheet roofs: calibrated "
                    "automatically (achievable matmul FLOP/s and copy bandwidth); give "
                    "--peak-flops and --hbm-bandwidth to use your own"
                )
            say("calibrating: matmul FLOP/s and copy bandwidth...")
            calibration = worker.calibrate(s.device, device.dtype)
        roofs = _roofs(gpu, device.dtype, calibration, s)
        window: Callable[[], MeasureWindow] = NullWindow
        if source is not None:
            window = NvmlSampler(source, uuid=device.uuid).window
        outcomes = run_sweep(runner, cells, plan, window=window, progress=progress)
    finally:
        if source is not None:
            source.close()
    return sweep_report(
        outcomes,
        model=model,
        device=device,
        roofs=roofs,
        calibration=calibration,
        pool=runner.pool,
        plan=plan,
        gpu_counters=gpu_note,
        gpu_counters_available=source is not None,
        notes=notes,
    )


def _runner(
    worker: WorkerParts,
    model: ModelSpec,
    cells: Sequence[CellSpec],
    plan: StepPlan,
    s: ProfileSettings,
) -> CellRunner:
    try:
        return worker.runner(
            model,
            cells,
            plan,
            device=s.device,
            kv_blocks=s.kv_blocks,
            block_size=s.block_size,
            dtype=s.dtype,
            fast_decode=s.fast_decode,
            seed=s.seed,
        )
    except ValueError as exc:
        raise ConfigError("--model", str(exc)) from None
    except RuntimeError as exc:  # allocating the model or the KV pool; torch's run long
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProfileSetupError(f"cannot set up the worker: {first}") from None


def _roofs(
    gpu: GpuSpec | None, dtype: str, calibration: Calibration | None, s: ProfileSettings
) -> Roofs:
    return resolve_roofs(
        gpu, dtype, calibration=calibration, peak_flops=s.peak_flops, bandwidth=s.hbm_bandwidth
    )


def profile_attach(
    settings: ProfileSettings,
    *,
    progress: Callable[[float], None] | None = None,
    nvml: Callable[[], tuple[NvmlSource | None, str]] = open_nvml,
) -> ProfileReport:
    """Observe the engine at `settings.engine` for `settings.duration` seconds;
    `progress(seconds_elapsed)` as the window runs."""
    from ..sources.engine import EngineSource  # noqa: PLC0415 - prometheus_client's parser
    from .attach import observe  # noqa: PLC0415

    s = settings
    assert s.engine is not None
    gpu = _table_gpu(s.gpu)
    try:
        refs = [GpuRef.parse(g) for g in s.gpus]
        config = EngineConfig("profile", s.engine, kind=s.kind, gpus=s.gpus)
    except ConfigError as exc:
        raise ConfigError("--engine/--gpus", str(exc)) from None
    source, gpu_note = nvml()
    indexes = tuple(r.index for r in refs if r.index)
    notes = []
    try:
        if gpu is None and source is not None:
            names = [d.name for d in source.devices if not indexes or str(d.index) in indexes]
            gpu = next((g for n in names if (g := match_nvml_name(n))), None)
        roofs = None
        if gpu is not None or (s.peak_flops and s.hbm_bandwidth):
            roofs = _roofs(gpu, s.dtype or "bf16", None, s)
        else:
            notes.append("no GPU peaks (no --gpu, none detected): MFU, MBU and bound are n/a")
        window = NvmlSampler(source, gpus=indexes).window() if source is not None else None
        observation = observe(
            EngineSource(config),
            s.duration,
            interval=s.interval,
            window=window,
            progress=progress,
        )
    finally:
        if source is not None:
            source.close()
    return attach_report(
        observation,
        url=s.engine,
        kind=s.kind,
        gpus=s.gpus,
        roofs=roofs,
        gpu_counters=gpu_note,
        gpu_counters_available=source is not None,
        notes=notes,
    )
