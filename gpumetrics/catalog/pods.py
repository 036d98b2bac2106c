"""Pod attribution families (source: the kubelet PodResources API, or NVML process ids and
their cgroups; `gpumetrics serve --pod-attribution`).

The join metric carries the pod labels once per GPU instead of on every GPU series: join it
`on (instance, job, gpu_uuid)` with `group_left (namespace, pod)` (the recording rules
`gpumetrics:pod_mfu:ratio` and `gpumetrics:pod_mbu:ratio` do). From the kubelet, `namespace`,
`pod` and `container` are names; from the cgroup fallback `pod` is the pod UID (join
kube-state-metrics' `kube_pod_info{uid}` for the name), `namespace` is empty and `container`
is the container runtime's id.
"""

from __future__ import annotations

from .spec import Group, MetricType, Source, Stability, metric

__all__ = ["ALL", "GPU_POD_INFO", "POD_LABELS", "POD_MEMORY_UTILIZATION", "POD_SM_UTILIZATION"]

#: Labels of the per-pod utilization series.
POD_LABELS = ("gpu_uuid", "namespace", "pod")

GPU_POD_INFO = metric(
    "gpumetrics_gpu_pod_info",
    MetricType.INFO,
    "Which pod container holds a GPU or MIG device (gpu_uuid: GPU-... or MIG-...); value "
    "always 1. One series per (device, container); a time-sliced GPU has one per pod.",
    ("gpu_uuid", "namespace", "pod", "container"),
    source=Source.KUBERNETES,
    group=Group.PODS,
    stability=Stability.EXPERIMENTAL,
)
POD_SM_UTILIZATION = metric(
    "gpumetrics_gpu_pod_sm_utilization_ratio",
    MetricType.GAUGE,
    "Share of the GPU's SM time used by a pod's processes since the last sample: the sum over "
    "its processes of nvmlDeviceGetProcessUtilization smUtil (nvidia-smi pmon -s u, sm), 0..1. "
    "Whole GPUs only (MIG has no per-process utilization).",
    POD_LABELS,
    source=Source.KUBERNETES,
    group=Group.PODS,
    stability=Stability.EXPERIMENTAL,
)
POD_MEMORY_UTILIZATION = metric(
    "gpumetrics_gpu_pod_memory_utilization_ratio",
    MetricType.GAUGE,
    "Share of the GPU's memory-controller time used by a pod's processes since the last "
    "sample: the sum over its processes of nvmlDeviceGetProcessUtilization memUtil "
    "(nvidia-smi pmon -s u, mem), 0..1. Not bandwidth; whole GPUs only.",
    POD_LABELS,
    source=Source.KUBERNETES,
    group=Group.PODS,
    stability=Stability.EXPERIMENTAL,
)

ALL = (GPU_POD_INFO, POD_SM_UTILIZATION, POD_MEMORY_UTILIZATION)
