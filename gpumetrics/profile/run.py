"""Putting a profile together, torch-free: the roofs, and the report of a sweep or a window.

Roofs (REFERENCE.md §1-2). The reference roofs decide bound, MFU and MBU:

* a GPU with a spec-table row (matched from `torch.cuda.get_device_name` through
  `hardware.match_nvml_name`, or named with --gpu): its dense datasheet peak for the dtype and
  its HBM bandwidth (kind `datasheet`); --peak-flops / --hbm-bandwidth replace either (kind
  `user`); with --calibrate the measured roofs are shown beside them (kind `achievable`);
* no table row (every CPU, an unknown GPU): the measured roofs are the reference (kind
  `achievable`), calibrated automatically when the user did not give both peaks — a CPU run
  gets an honest roofline of its own rather than a made-up datasheet; a peak the user gives
  replaces the measured one (kind `user`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from ..costmodel import ModelSpec
from ..errors import ConfigError
from ..hardware import GpuSpec
from .analysis import Roof, Roofs, analyze
from .attach import Observation, attach_verdict, summarize
from .measure import Calibration, DeviceInfo, KvPool, StepPlan
from .report import AttachInfo, ProfileReport
from .sweep import SweepOutcome
from .verdict import verdict

__all__ = ["attach_report", "needs_calibration", "now_iso", "resolve_roofs", "sweep_report"]


def now_iso() -> str:
    """The current UTC time, ISO 8601 with seconds (`2026-05-01T12:00:00Z`)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def needs_calibration(
    gpu: GpuSpec | None, peak_flops: float | None, bandwidth: float | None
) -> bool:
    """Whether the roofs cannot be had without measuring (no table row, a peak missing)."""
    return gpu is None and (peak_flops is None or bandwidth is None)


def resolve_roofs(
    gpu: GpuSpec | None,
    dtype: str,
    *,
    calibration: Calibration | None = None,
    peak_flops: float | None = None,
    bandwidth: float | None = None,
) -> Roofs:
    """The reference (and achievable) roofs, as the module docstring says; ConfigError when
    a roof is missing or the GPU has no peak for `dtype`."""
    user = [what for what, v in (("peak", peak_flops), ("bandwidth", bandwidth)) if v is not None]
    achievable = (
        Roof(
            "achievable",
            calibration.matmul_flops,
            calibration.copy_bandwidth,
            f"measured on {calibration.device}: {calibration.matmul_size}³ {calibration.dtype} "
            f"matmul, {calibration.copy_bytes / 2**20:.0f} MiB copy (read + write)",
        )
        if calibration is not None
        else None
    )
    if gpu is not None:
        try:
            base_peak = gpu.peak(dtype)
        except KeyError as exc:
            raise ConfigError("dtype", str(exc.args[0])) from None
        reference = Roof(
            "user" if user else "datasheet",
            peak_flops if peak_flops is not None else base_peak,
            bandwidth if bandwidth is not None else gpu.hbm_bandwidth,
            f"{gpu.name}: {gpu.source}"
            + (f"; {' and '.join(user)} from the command line" if user else ""),
        )
        return Roofs(reference, achievable)
    if achievable is None:
        if peak_flops is None or bandwidth is None:
            raise ConfigError(
                "peaks",
                "this device has no spec-table row: give --peak-flops and --hbm-bandwidth, "
                "or --calibrate",
            )
        return Roofs(Roof("user", peak_flops, bandwidth, "--peak-flops, --hbm-bandwidth"))
    if not user:
        return Roofs(achievable)
    reference = Roof(
        "user",
        peak_flops if peak_flops is not None else achievable.peak_flops,
        bandwidth if bandwidth is not None else achievable.bandwidth,
        f"{' and '.join(user)} from the command line, the rest measured",
    )
    return Roofs(reference, achievable)


def sweep_report(
    outcomes: Sequence[SweepOutcome],
    *,
    model: ModelSpec,
    device: DeviceInfo,
    roofs: Roofs,
    calibration: Calibration | None,
    pool: KvPool,
    plan: StepPlan,
    gpu_counters: str,
    gpu_counters_available: bool,
    notes: Sequence[str] = (),
    created: str | None = None,
) -> ProfileReport:
    """Analyse a sweep's outcomes and write its verdict."""
    results, groups = analyze(
        outcomes, roofs, pool=pool, plan=plan, model=model, dtype=device.dtype
    )
    lines = verdict(results, groups, roofs, pool, gpu_note=gpu_counters)
    return ProfileReport(
        mode="sweep",
        created=created or now_iso(),
        model=model,
        dtype=device.dtype,
        device=device,
        roofs=roofs,
        calibration=calibration,
        pool=pool,
        plan=plan,
        results=results,
        groups=groups,
        gpu_counters_available=gpu_counters_available,
        gpu_counters=gpu_counters,
        verdict=tuple(lines),
        notes=tuple(notes),
    )


def attach_report(
    observation: Observation,
    *,
    url: str,
    kind: str,
    gpus: Sequence[str],
    roofs: Roofs | None,
    gpu_counters: str,
    gpu_counters_available: bool,
    notes: Sequence[str] = (),
    created: str | None = None,
) -> ProfileReport:
    """Summarise an attach window (peaks per GPU x the number of GPUs) and its verdict."""
    roof = roofs.reference if roofs else None
    summary = summarize(observation, roof, gpus=max(1, len(gpus)))
    lines = attach_verdict(summary, roof, url=url, gpu_note=gpu_counters)
    return ProfileReport(
        mode="attach",
        created=created or now_iso(),
        model=None,
        dtype=None,
        device=None,
        roofs=roofs,
        calibration=None,
        pool=None,
        plan=None,
        results=(),
        groups=(),
        gpu_counters_available=gpu_counters_available,
        gpu_counters=gpu_counters,
        verdict=tuple(lines),
        notes=tuple(notes),
        attach=AttachInfo(url, kind, tuple(gpus), observation.requested_seconds, summary),
    )
