"""The profile report: one record holding everything a run found, and its JSON form.

Measured data is kept apart from how it is emitted (DESIGN.md §6.1): `ProfileReport` is the
data; `report_to_dict` is the versioned JSON form (schema `gpumetrics.profile/v1`, documented
in docs/profile-schema.md, JSON Schema in `gpumetrics.profile.schema`); the CSV, plot, HTML and
the terminal table all read the same dicts. Base units throughout: seconds, FLOPs, FLOP/s,
bytes, bytes/s, ratios 0..1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

from .. import __version__
from ..costmodel import ModelSpec
from .analysis import CellResult, GroupSummary, Roof, Roofs
from .attach import AttachSummary
from .measure import Calibration, DeviceInfo, GpuActivity, KvPool, StepPlan

__all__ = [
    "CELL_FIELDS",
    "SCHEMA",
    "AttachInfo",
    "ProfileReport",
    "cell_to_dict",
    "report_to_dict",
]

SCHEMA: Final = "gpumetrics.profile/v1"

#: Keys of one cell in the JSON `cells` list (and the CSV columns, `gpu` flattened).
CELL_FIELDS: Final = (
    "label",
    "phase",
    "batch",
    "context",
    "chunk",
    "status",
    "skip_reason",
    "kv_fits",
    "marks",
    "steps",
    "step_seconds_p50",
    "step_seconds_p95",
    "step_seconds_mean",
    "tokens_per_second",
    "flops_per_step",
    "bytes_per_step",
    "achieved_flops_per_second",
    "achieved_bytes_per_second",
    "arithmetic_intensity",
    "predicted_step_seconds",
    "roofline_fraction",
    "bound",
    "mfu",
    "mbu",
    "mfu_achievable",
    "mbu_achievable",
    "mean_sequences",
    "mean_context",
    "kv_used_blocks",
    "kv_used_bytes",
    "gpu",
)


@dataclass(frozen=True, slots=True)
class AttachInfo:
    """Attach mode: which engine was observed and what the window gave."""

    url: str
    kind: str
    gpus: tuple[str, ...]
    requested_seconds: float
    summary: AttachSummary


@dataclass(frozen=True, slots=True)
class ProfileReport:
    """Everything one `gpumetrics profile` run found. `mode` is sweep or attach;
    `gpu_counters` says whether NVML/GPM was sampled and, if not, why."""

    mode: str
    created: str
    """ISO 8601 UTC time of the run."""
    model: ModelSpec | None
    dtype: str | None
    device: DeviceInfo | None
    roofs: Roofs | None
    calibration: Calibration | None
    pool: KvPool | None
    plan: StepPlan | None
    results: tuple[CellResult, ...]
    groups: tuple[GroupSummary, ...]
    gpu_counters_available: bool
    gpu_counters: str
    verdict: tuple[str, ...]
    notes: tuple[str, ...] = ()
    attach: AttachInfo | None = None


def _roof(roof: Roof | None) -> dict[str, Any] | None:
    return None if roof is None else {**asdict(roof), "ridge": roof.ridge}


def _gpu(activity: GpuActivity | None) -> dict[str, Any] | None:
    return None if activity is None else asdict(activity)


def cell_to_dict(result: CellResult) -> dict[str, Any]:
    """One cell as JSON-ready data (keys: CELL_FIELDS; numbers None when skipped)."""
    c, n = result.cell, result.numbers
    out: dict[str, Any] = {
        "label": c.label,
        "phase": c.phase,
        "batch": c.batch,
        "context": c.context,
        "chunk": c.chunk,
        "status": "ok" if n is not None else "skipped",
        "skip_reason": result.skipped,
        "kv_fits": result.fits,
        "marks": sorted(m.value for m in result.marks),
    }
    numbers: dict[str, Any] = dict.fromkeys(CELL_FIELDS[9:])
    if n is not None:
        numbers.update(
            steps=n.steps,
            step_seconds_p50=n.step_p50,
            step_seconds_p95=n.step_p95,
            step_seconds_mean=n.step_mean,
            tokens_per_second=n.tokens_per_second,
            flops_per_step=n.flops_per_step,
            bytes_per_step=n.bytes_per_step,
            achieved_flops_per_second=n.achieved_flops,
            achieved_bytes_per_second=n.achieved_bytes,
            arithmetic_intensity=n.intensity,
            predicted_step_seconds=n.predicted_step_seconds,
            roofline_fraction=n.roofline_fraction,
            bound=n.bound.value,
            mfu=n.mfu,
            mbu=n.mbu,
            mfu_achievable=n.mfu_achievable,
            mbu_achievable=n.mbu_achievable,
            mean_sequences=n.mean_sequences,
            mean_context=n.mean_context,
            kv_used_blocks=n.kv_used_blocks,
            kv_used_bytes=n.kv_used_bytes,
            gpu=_gpu(n.gpu),
        )
    return out | numbers


def _group(g: GroupSummary) -> dict[str, Any]:
    """Every field but `bounds` (the per-cell bounds are in `cells`)."""
    out = asdict(g)
    del out["bounds"]
    return out


def _attach(info: AttachInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    s = info.summary
    return {
        "url": info.url,
        "kind": info.kind,
        "detected_kind": s.kind,
        "engine_model": s.model,
        "gpus": list(info.gpus),
        "requested_seconds": info.requested_seconds,
        "window_seconds": s.window_seconds,
        "scrapes": s.scrapes,
        "failures": [{"at_seconds": at, "message": msg} for at, msg in s.failures],
        "complete": s.complete,
        "tokens_per_second": s.tokens_per_second,
        "prefill_tokens_per_second": s.prefill_tokens_per_second,
        "decode_tokens_per_second": s.decode_tokens_per_second,
        "steps_per_second": s.steps_per_second,
        "mean_batch": s.mean_batch,
        "hit_ratio": s.hit_ratio,
        "kv_usage": s.kv_usage,
        "busy_ratio": s.busy_ratio,
        "flops_per_second": s.flops_per_second,
        "bytes_per_second": s.bytes_per_second,
        "arithmetic_intensity": s.intensity,
        "mfu": s.mfu,
        "mbu": s.mbu,
        "bound": s.bound.value if s.bound is not None else None,
        "gpu_count": s.gpus,
        "gpu": _gpu(s.gpu),
    }


def report_to_dict(report: ProfileReport) -> dict[str, Any]:
    """The report as JSON-ready data, schema `gpumetrics.profile/v1`."""
    m, d, cal, pool, plan = (
        report.model,
        report.device,
        report.calibration,
        report.pool,
        report.plan,
    )
    return {
        "schema": SCHEMA,
        "mode": report.mode,
        "created": report.created,
        "gpumetrics_version": __version__,
        "model": None
        if m is None
        else {
            "name": m.name,
            "params": m.total_params,
            "dtype": report.dtype,
            "kv_bytes_per_token": m.kv_bytes_per_token(report.dtype or "bf16"),
        },
        "device": None if d is None else asdict(d),
        "roofs": None
        if report.roofs is None
        else {
            "reference": _roof(report.roofs.reference),
            "achievable": _roof(report.roofs.achievable),
        },
        "calibration": None if cal is None else asdict(cal),
        "kv_pool": None if pool is None else {**asdict(pool), "budget_tokens": pool.budget_tokens},
        "plan": None if plan is None else asdict(plan),
        "gpu_counters": {
            "available": report.gpu_counters_available,
            "note": report.gpu_counters,
        },
        "cells": [cell_to_dict(r) for r in report.results],
        "groups": [_group(g) for g in report.groups],
        "attach": _attach(report.attach),
        "verdict": list(report.verdict),
        "notes": list(report.notes),
    }
