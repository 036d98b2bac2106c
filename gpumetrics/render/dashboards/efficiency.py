"""Efficiency: is the GPU doing useful work? Roofline position, MFU, MBU, GPM vs naive."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import timeseries

from ...catalog import gpu as g
from ...catalog import pods as p
from ..rules import pods as rp
from ..rules import recording as r
from ..rules.promql import sel
from ..rules.recording import help_of
from .panels import Q, Row, build_dashboard, describe, stat_panel, timeseries_panel
from .variables import (
    ENGINE,
    GPU,
    POD,
    POD_ANY_NODE,
    datasource_variable,
    dtype_variable,
    engine_variables,
    fleet_variables,
    gpu_variables,
    pod_variables,
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


_ENGINE_DTYPE = with_dtype(ENGINE)


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
                    Q(sel(r.ARITHMETIC_INTENSITY["5m"], ENGINE), f"intensity {_WHO}"),
                    Q(sel(r.ARITHMETIC_INTENSITY["1m"], ENGINE), f"intensity 1m {_WHO}"),
                    Q(sel(r.ENGINE_RIDGE, _ENGINE_DTYPE), f"ridge ({{{{dtype}}}}) {_WHO}"),
                ],
                log_scale=True,
            ),
            stat_panel(
                "Bound",
                f"{help_of(r.COMPUTE_BOUND)}",
                "none",
                [Q(sel(r.COMPUTE_BOUND, _ENGINE_DTYPE), _WHO)],
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
                    Q(sel(r.MFU["5m"], _ENGINE_DTYPE), f"5m {_WHO}"),
                    Q(sel(r.MFU["1m"], _ENGINE_DTYPE), f"1m {_WHO}"),
                ],
                steps=((None, "blue"), (0.3, "green"), (0.8, "orange")),
                show_thresholds=True,
                min_value=0.0,
            ),
            timeseries_panel(
                "MBU",
                help_of(r.MBU["5m"]),
                "percentunit",
                [
                    Q(sel(r.MBU["5m"], ENGINE), f"5m {_WHO}"),
                    Q(sel(r.MBU["1m"], ENGINE), f"1m {_WHO}"),
                ],
                steps=((None, "blue"), (0.5, "green"), (0.9, "orange")),
                show_thresholds=True,
                min_value=0.0,
            ),
            timeseries_panel(
                "Achieved FLOP/s vs peak",
                f"{help_of(r.COMPUTE_FLOPS['5m'])} {help_of(r.ENGINE_PEAK_FLOPS)}",
                "flops",
                [
                    Q(sel(r.COMPUTE_FLOPS["5m"], ENGINE), f"achieved {_WHO}"),
                    Q(sel(r.ENGINE_PEAK_FLOPS, _ENGINE_DTYPE), f"peak ({{{{dtype}}}}) {_WHO}"),
                ],
                min_value=0.0,
            ),
            timeseries_panel(
                "Achieved memory bandwidth vs peak",
                f"{help_of(r.MEMORY_BYTES['5m'])} {help_of(r.ENGINE_PEAK_BANDWIDTH)}",
                "Bps",
                [
                    Q(sel(r.MEMORY_BYTES["5m"], ENGINE), f"achieved {_WHO}"),
                    Q(sel(r.ENGINE_PEAK_BANDWIDTH, ENGINE), f"peak {_WHO}"),
                ],
                min_value=0.0,
            ),
        ],
    )


_POD_WHO = "{{namespace}}/{{pod}} on {{instance}}"
_POD_ENGINE_WHO = "{{namespace}}/{{pod}} (engine scraped directly)"


def _pods() -> Row:
    """Per pod, through the join metric (`serve --pod-attribution`)."""
    return Row(
        "Per pod (serve --pod-attribution)",
        [
            timeseries_panel(
                "Pod MFU",
                f"{help_of(rp.POD_MFU)} {help_of(rp.POD_ENGINE_MFU)} {help_of(rp.GPU_POD_OWNER)}",
                "percentunit",
                [
                    Q(sel(rp.POD_MFU, with_dtype(POD)), _POD_WHO),
                    Q(sel(rp.POD_ENGINE_MFU, with_dtype(POD_ANY_NODE)), _POD_ENGINE_WHO),
                ],
                steps=((None, "blue"), (0.3, "green"), (0.8, "orange")),
                show_thresholds=True,
                min_value=0.0,
                width=6,
            ),
            timeseries_panel(
                "Pod MBU",
                f"{help_of(rp.POD_MBU)} {help_of(rp.POD_ENGINE_MBU)}",
                "percentunit",
                [
                    Q(sel(rp.POD_MBU, POD), _POD_WHO),
                    Q(sel(rp.POD_ENGINE_MBU, POD_ANY_NODE), _POD_ENGINE_WHO),
                ],
                steps=((None, "blue"), (0.5, "green"), (0.9, "orange")),
                show_thresholds=True,
                min_value=0.0,
                width=6,
            ),
            timeseries_panel(
                "Pod SM utilization (per process, summed)",
                describe(p.POD_SM_UTILIZATION),
                "percentunit",
                [Q(sel(p.POD_SM_UTILIZATION.name, POD), "{{gpu_uuid}} " + _POD_WHO)],
                min_value=0.0,
                max_value=1.0,
                width=6,
            ),
            timeseries_panel(
                "Pod memory utilization (per process, summed)",
                describe(p.POD_MEMORY_UTILIZATION),
                "percentunit",
                [Q(sel(p.POD_MEMORY_UTILIZATION.name, POD), "{{gpu_uuid}} " + _POD_WHO)],
                min_value=0.0,
                max_value=1.0,
                width=6,
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
                    Q(sel(g.GPM_TENSOR_ACTIVE.name, GPU), f"tensor active {_GPU_WHO}"),
                    Q(sel(g.GPU_UTILIZATION_NAIVE.name, GPU), f"naive {_GPU_WHO}"),
                ],
            ),
            _activity(
                "DRAM active vs naive memory utilization",
                f"{describe(g.GPM_DRAM_ACTIVE)} {describe(g.GPU_MEMORY_UTILIZATION_NAIVE)}",
                [
                    Q(sel(g.GPM_DRAM_ACTIVE.name, GPU), f"DRAM active {_GPU_WHO}"),
                    Q(sel(g.GPU_MEMORY_UTILIZATION_NAIVE.name, GPU), f"naive {_GPU_WHO}"),
                ],
            ),
            _activity(
                "SM active and occupancy",
                f"{describe(g.GPM_SM_ACTIVE)} {describe(g.GPM_SM_OCCUPANCY)}",
                [
                    Q(sel(g.GPM_SM_ACTIVE.name, GPU), f"SM active {_GPU_WHO}"),
                    Q(sel(g.GPM_SM_OCCUPANCY.name, GPU), f"occupancy {_GPU_WHO}"),
                ],
            ),
            _activity(
                "Other pipes active",
                describe(g.GPM_PIPE_ACTIVE),
                [Q(sel(g.GPM_PIPE_ACTIVE.name, GPU), "{{pipe}} " + _GPU_WHO)],
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
            *pod_variables(),
            dtype_variable(),
        ],
        [_roofline(), _utilisation(), _pods(), _gpm()],
    )
