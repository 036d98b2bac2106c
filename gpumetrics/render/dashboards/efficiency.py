"""Efficiency: is the GPU doing useful work? Roofline position, MFU, MBU, GPM vs naive."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import timeseries

from ...catalog import gpu as g
from ..rules import recording as r
from ..rules.recording import help_of
from .panels import Q, Row, build_dashboard, describe, stat_panel, timeseries_panel
from .variables import (
    ENGINE,
    GPU,
    datasource_variable,
    dtype_variable,
    engine_variables,
    fleet_variables,
    gpu_variables,
    with_dtype,
)

__all__ = ["ANSWERS", "TITLE", "efficiency_dashboard"]

TITLE = "Efficiency"
ANSWERS = (
    "Is the GPU doing useful work, and which roof limits it? Arithmetic intensity against the "
    "GPU's ridge point (memory- or compute-bound), MFU and MBU against dense peaks, and the "
    "GPM tensor-active and DRAM-active signals beside NVML's naive utilization, which reads "
    "100% as soon as any kernel runs."
)

_WHO = "{{engine}} on {{instance}}"
_GPU_WHO = "GPU {{gpu}} on {{instance}}"
_FLOP_PER_BYTE = "suffix:FLOP/B"


def _eng(name: str, dtype: bool = False) -> str:
    return f"{name}{{{with_dtype(ENGINE) if dtype else ENGINE}}}"


def _gpu(name: str) -> str:
    return f"{name}{{{GPU}}}"


def _roofline() -> Row:
    return Row(
        "Roofline",
        [
            timeseries_panel(
                "Arithmetic intensity vs ridge point",
                f"{help_of(r.ARITHMETIC_INTENSITY['5m'])} {help_of(r.ENGINE_RIDGE)} Below the "
                "ridge the engine is memory-bound: more FLOPs per byte (bigger batches) would "
                "be free; above it, compute-bound.",
                _FLOP_PER_BYTE,
                [
                    Q(_eng(r.ARITHMETIC_INTENSITY["5m"]), f"intensity {_WHO}"),
                    Q(_eng(r.ARITHMETIC_INTENSITY["1m"]), f"intensity 1m {_WHO}"),
                    Q(_eng(r.ENGINE_RIDGE, dtype=True), f"ridge ({{{{dtype}}}}) {_WHO}"),
                ],
                log_scale=True,
            ),
            stat_panel(
                "Bound",
                f"{help_of(r.COMPUTE_BOUND)}",
                "none",
                [Q(_eng(r.COMPUTE_BOUND, dtype=True), _WHO)],
                mappings=(("0", "memory-bound", "blue"), ("1", "compute-bound", "purple")),
                height=8,
            ),
            stat_panel(
                "GPU ridge point",
                help_of(r.GPU_RIDGE),
                _FLOP_PER_BYTE,
                [Q(f"{r.GPU_RIDGE}{{{with_dtype(GPU)}}}", "{{gpu_model}} " + _GPU_WHO)],
                height=8,
            ),
        ],
    )


def _utilisation() -> Row:
    return Row(
        "MFU and MBU",
        [
            timeseries_panel(
                "MFU",
                f"{help_of(r.MFU['5m'])} Measured against the dense peak of the chosen dtype.",
                "percentunit",
                [
                    Q(_eng(r.MFU["5m"], dtype=True), f"5m {_WHO}"),
                    Q(_eng(r.MFU["1m"], dtype=True), f"1m {_WHO}"),
                ],
                steps=((None, "blue"), (0.3, "green"), (0.8, "orange")),
                show_thresholds=True,
                min_value=0.0,
            ),
            timeseries_panel(
                "MBU",
                help_of(r.MBU["5m"]),
                "percentunit",
                [Q(_eng(r.MBU["5m"]), f"5m {_WHO}"), Q(_eng(r.MBU["1m"]), f"1m {_WHO}")],
                steps=((None, "blue"), (0.5, "green"), (0.9, "orange")),
                show_thresholds=True,
                min_value=0.0,
            ),
            timeseries_panel(
                "Achieved FLOP/s vs peak",
                f"{help_of(r.COMPUTE_FLOPS['5m'])} {help_of(r.ENGINE_PEAK_FLOPS)}",
                "flops",
                [
                    Q(_eng(r.COMPUTE_FLOPS["5m"]), f"achieved {_WHO}"),
                    Q(_eng(r.ENGINE_PEAK_FLOPS, dtype=True), f"peak ({{{{dtype}}}}) {_WHO}"),
                ],
                min_value=0.0,
            ),
            timeseries_panel(
                "Achieved memory bandwidth vs peak",
                f"{help_of(r.MEMORY_BYTES['5m'])} {help_of(r.ENGINE_PEAK_BANDWIDTH)}",
                "Bps",
                [
                    Q(_eng(r.MEMORY_BYTES["5m"]), f"achieved {_WHO}"),
                    Q(_eng(r.ENGINE_PEAK_BANDWIDTH), f"peak {_WHO}"),
                ],
                min_value=0.0,
            ),
        ],
    )


def _activity(title: str, description: str, queries: list[Q]) -> timeseries.Panel:
    return timeseries_panel(
        title,
        description,
        "percentunit",
        queries,
        steps=((None, "blue"), (0.5, "green")),
        min_value=0.0,
        max_value=1.0,
    )


def _gpm() -> Row:
    return Row(
        "GPU activity: GPM signals vs naive utilization",
        [
            _activity(
                "Tensor active vs naive utilization",
                f"{describe(g.GPM_TENSOR_ACTIVE)} {describe(g.GPU_UTILIZATION_NAIVE)}",
                [
                    Q(_gpu(g.GPM_TENSOR_ACTIVE.name), f"tensor active {_GPU_WHO}"),
                    Q(_gpu(g.GPU_UTILIZATION_NAIVE.name), f"naive {_GPU_WHO}"),
                ],
            ),
            _activity(
                "DRAM active vs naive memory utilization",
                f"{describe(g.GPM_DRAM_ACTIVE)} {describe(g.GPU_MEMORY_UTILIZATION_NAIVE)}",
                [
                    Q(_gpu(g.GPM_DRAM_ACTIVE.name), f"DRAM active {_GPU_WHO}"),
                    Q(_gpu(g.GPU_MEMORY_UTILIZATION_NAIVE.name), f"naive {_GPU_WHO}"),
                ],
            ),
            _activity(
                "SM active and occupancy",
                f"{describe(g.GPM_SM_ACTIVE)} {describe(g.GPM_SM_OCCUPANCY)}",
                [
                    Q(_gpu(g.GPM_SM_ACTIVE.name), f"SM active {_GPU_WHO}"),
                    Q(_gpu(g.GPM_SM_OCCUPANCY.name), f"occupancy {_GPU_WHO}"),
                ],
            ),
            _activity(
                "Other pipes active",
                describe(g.GPM_PIPE_ACTIVE),
                [Q(_gpu(g.GPM_PIPE_ACTIVE.name), "{{pipe}} " + _GPU_WHO)],
            ),
        ],
    )


def efficiency_dashboard() -> db.Dashboard:
    return build_dashboard(
        TITLE,
        ANSWERS,
        [
            datasource_variable(),
            *fleet_variables(),
            *engine_variables(),
            *gpu_variables(),
            dtype_variable(),
        ],
        [_roofline(), _utilisation(), _gpm()],
    )
