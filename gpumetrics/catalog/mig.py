"""MIG instance activity families (source: GPM sampled per GPU instance,
`nvmlGpmMigSampleGet`; DCGM reports the same DCGM_FI_PROF_* fields per GPU instance).

One series per MIG device: `gpu` is its key ("0/mig-1", as on the per-GPU families),
`gpu_uuid` the MIG device's UUID (MIG-...), `gpu_model` its NVML name; `gpu_instance_id` the
GPU instance id (`nvidia-smi mig -lgi`) and `mig_profile` its profile (3g.40gb). Ratios are
of the instance's own slice of the GPU, not of the whole GPU.
"""

from __future__ import annotations

from .gpu import GPU_LABELS
from .spec import Group, MetricSpec, MetricType, Source, metric

__all__ = [
    "ALL",
    "MIG_DRAM_ACTIVE",
    "MIG_GRAPHICS_ACTIVE",
    "MIG_LABELS",
    "MIG_PIPE_ACTIVE",
    "MIG_SM_ACTIVE",
    "MIG_SM_OCCUPANCY",
    "MIG_TENSOR_ACTIVE",
]

#: Labels on every MIG instance series.
MIG_LABELS = (*GPU_LABELS, "gpu_instance_id", "mig_profile")


def _mig(name: str, help_text: str, labels: tuple[str, ...] = MIG_LABELS) -> MetricSpec:
    return metric(
        f"gpumetrics_mig_{name}_ratio",
        MetricType.GAUGE,
        help_text,
        labels,
        source=Source.GPM,
        group=Group.GPM,
    )


MIG_GRAPHICS_ACTIVE = _mig(
    "graphics_active",
    "Share of time the MIG instance's graphics/compute engine was busy (GPM graphics util "
    "per GPU instance; DCGM_FI_PROF_GR_ENGINE_ACTIVE).",
)
MIG_SM_ACTIVE = _mig(
    "sm_active", "Share of the MIG instance's SMs busy over the sample window (GPM SM util)."
)
MIG_SM_OCCUPANCY = _mig(
    "sm_occupancy",
    "Resident warps over the theoretical maximum on the MIG instance's SMs (GPM).",
)
MIG_TENSOR_ACTIVE = _mig(
    "tensor_active", "Share of time any tensor pipe of the MIG instance was busy (GPM)."
)
MIG_DRAM_ACTIVE = _mig(
    "dram_active", "HBM bandwidth the MIG instance used over its slice's peak (GPM)."
)
MIG_PIPE_ACTIVE = _mig(
    "pipe_active",
    "Share of time a non-tensor pipe of the MIG instance was busy, by pipe "
    "fp16|fp32|fp64|integer (GPM).",
    (*MIG_LABELS, "pipe"),
)

ALL = (
    MIG_GRAPHICS_ACTIVE,
    MIG_SM_ACTIVE,
    MIG_SM_OCCUPANCY,
    MIG_TENSOR_ACTIVE,
    MIG_DRAM_ACTIVE,
    MIG_PIPE_ACTIVE,
)
