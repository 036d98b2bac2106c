"""Recording rules for pod attribution: per-GPU achieved rates, and per-pod MFU/MBU through the
join metric `gpumetrics_gpu_pod_info` (never by copying pod labels onto GPU series).

- per GPU, the FLOP/s and memory bytes/s of the engines on it, each engine's rate split evenly
  over its GPUs (`gpumetrics_engine_gpu_info`), as `serve`'s gpu MFU gauge does;
- `gpumetrics:gpu_pod_owner:info`: the pod holding each GPU, for GPUs held by exactly one pod
  (a time-sliced GPU has no one owner, and a join through it would be many-to-many);
- per pod, the summed dense peaks and peak bandwidth of its GPUs; MFU by dtype = its GPUs'
  FLOP/s (engines the exporter reads) over that peak, MBU = their bytes/s over that bandwidth;
- `gpumetrics:pod_engine_mfu:rate5m` / `pod_engine_mbu`: the same for engines Prometheus scrapes
  directly (a PodMonitor or ServiceMonitor puts `namespace` and `pod` on their series), joined
  to the pod's GPUs `on (namespace, pod)`: MFU where several inference pods share a node.
"""

from __future__ import annotations

from ...catalog import engine as e
from ...catalog import gpu as g
from ...catalog import pods as p
from .model import Recording, record_name
from .promql import ENGINE_JOIN, GPU_JOIN, by, sel, without

__all__ = [
    "GPU_COMPUTE_FLOPS",
    "GPU_MEMORY_BYTES",
    "GPU_POD_OWNER",
    "POD_ENGINE_MBU",
    "POD_ENGINE_MFU",
    "POD_MBU",
    "POD_MFU",
    "POD_PEAK_BANDWIDTH",
    "POD_PEAK_FLOPS",
    "rules",
]

GPU_COMPUTE_FLOPS = record_name("gpu_compute_flops_per_second", "rate5m")
GPU_MEMORY_BYTES = record_name("gpu_memory_bytes_per_second", "rate5m")
GPU_POD_OWNER = record_name("gpu_pod_owner", "info")
POD_PEAK_FLOPS = record_name("pod_peak_flops_per_second", "sum")
POD_PEAK_BANDWIDTH = record_name("pod_peak_memory_bandwidth_bytes_per_second", "sum")
POD_MFU = record_name("pod_mfu", "rate5m")
POD_MBU = record_name("pod_mbu", "rate5m")
POD_ENGINE_MFU = record_name("pod_engine_mfu", "rate5m")
POD_ENGINE_MBU = record_name("pod_engine_mbu", "rate5m")
#: The labels of a pod across targets (an engine's own, the exporter's join metric).
_POD = ("cluster", "region", "namespace", "pod")

_ON_ENGINE = f"on ({', '.join(ENGINE_JOIN)})"
_ON_GPU = f"on ({', '.join(GPU_JOIN)})"
_GPU_LABELS = without("gpu", "gpu_uuid", "gpu_model")


def _per_gpu(engine_rate: str) -> str:
    """An engine-level rate split evenly over the engine's GPUs, summed per GPU."""
    info = sel(e.ENGINE_GPU_INFO)
    gpus = f"count {without('gpu', 'gpu_uuid')} ({info})"
    return (
        f"sum {without('engine', 'model')} (\n  {info}\n  * {_ON_ENGINE} group_left ()\n"
        f"  ({engine_rate} / {_ON_ENGINE} {gpus})\n)"
    )


def _over_pod(series: str) -> str:
    """`series` (per GPU) summed over each pod's GPUs through the owner join."""
    return f"sum {_GPU_LABELS} ({series} * {_ON_GPU} group_left (namespace, pod) {GPU_POD_OWNER})"


def rules(compute_flops: str, memory_bytes: str) -> tuple[Recording, ...]:
    """The rules, given the engine-level 5m FLOP/s and bytes/s recording names (evaluated
    earlier in the same group)."""
    holders = f"max {without('container')} ({sel(p.GPU_POD_INFO)})"
    by_pod = f"by ({', '.join(_POD)})"
    on_pod = f"on ({', '.join(_POD)})"
    engine_flops = f"sum {by_pod} (rate({e.FLOPS.name}[5m]))"
    read, write = f"rate({e.READ_BYTES.name}[5m])", f"rate({e.WRITE_BYTES.name}[5m])"
    engine_bytes = f"sum {by_pod} (({read} + {write}) or {read})"
    return (
        Recording(
            GPU_COMPUTE_FLOPS,
            _per_gpu(compute_flops),
            "Achieved FLOP/s on each GPU: each engine's rate split evenly over its GPUs (5m).",
        ),
        Recording(
            GPU_MEMORY_BYTES,
            _per_gpu(memory_bytes),
            "Memory traffic on each GPU: each engine's bytes/s split evenly over its GPUs (5m).",
        ),
        Recording(
            GPU_POD_OWNER,
            f"{holders}\nand {_ON_GPU}\n(count {without('namespace', 'pod')} ({holders}) == 1)",
            "The pod holding each GPU, for GPUs held by exactly one pod (value 1).",
        ),
        Recording(
            POD_PEAK_FLOPS,
            _over_pod(sel(g.PEAK_FLOPS)),
            "Dense peak FLOP/s of the GPUs a pod holds alone, by dtype.",
        ),
        Recording(
            POD_PEAK_BANDWIDTH,
            _over_pod(sel(g.PEAK_MEMORY_BANDWIDTH)),
            "Peak memory bandwidth of the GPUs a pod holds alone.",
        ),
        Recording(
            POD_MFU,
            f"{_over_pod(GPU_COMPUTE_FLOPS)}\n/ ignoring (dtype) group_right\n{POD_PEAK_FLOPS}",
            "MFU of a pod by dtype: its GPUs' achieved FLOP/s over their summed dense peak (5m).",
        ),
        Recording(
            POD_MBU,
            f"{_over_pod(GPU_MEMORY_BYTES)}\n/\n{POD_PEAK_BANDWIDTH}",
            "MBU of a pod: its GPUs' memory traffic over their summed peak bandwidth (5m).",
        ),
        Recording(
            POD_ENGINE_MFU,
            f"{engine_flops}\n/ {on_pod} group_right\nsum {by(*_POD, 'dtype')} ({POD_PEAK_FLOPS})",
            "MFU by dtype of a pod's engines scraped directly (their namespace and pod target "
            "labels) over the dense peak of the GPUs the pod holds (5m).",
        ),
        Recording(
            POD_ENGINE_MBU,
            f"{engine_bytes}\n/ {on_pod}\nsum {by_pod} ({POD_PEAK_BANDWIDTH})",
            "MBU of a pod's engines scraped directly over the peak bandwidth of its GPUs (5m).",
        ),
    )
