"""The pod attribution source (`gpumetrics serve --pod-attribution`): who holds each GPU.

Two ways to know, chosen once at start:

- `kubelet`: the PodResources API names the namespace, pod and container of every GPU and MIG
  device (`kubelet.py`). Per-pod utilization then attributes a GPU's processes to the one pod
  holding it; a GPU time-sliced between pods gets no per-pod utilization (the kubelet names
  pods, the processes' cgroups give only UIDs, and the two cannot be matched on the node).
- `cgroup`: no kubelet socket (or outside Kubernetes): each GPU's compute processes (NVML) are
  traced to their cgroup (`cgroup.py`); `pod` is then the pod UID, `namespace` empty and
  `container` the runtime's container id. Host processes are not attributed.

Each cycle exports `gpumetrics_gpu_pod_info` and, where NVML has per-process utilization,
`gpumetrics_gpu_pod_{sm,memory}_utilization_ratio` per (GPU, pod): the sum over the pod's
processes of their mean utilization since the previous cycle (0 for a pod whose processes
were idle). A failing kubelet call raises (the Sampler sets `gpumetrics_source_up{source=
"pods"}` to 0 with the error's code); NVML failures are partial errors.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from ...catalog import pods as p
from ...samples import Collection, Sample
from .cgroup import owner_of
from .model import Assignment, GpuProcesses

__all__ = ["MODES", "PodAttributionSource", "PodLister", "ProcessReader"]

#: --pod-attribution values (`off` builds no source).
MODES = ("off", "auto", "kubelet", "cgroup")


class PodLister(Protocol):
    """The kubelet side (`KubeletClient`): GPU devices and the containers holding them."""

    def list(self) -> tuple[Assignment, ...]: ...

    def close(self) -> None: ...


class ProcessReader(Protocol):
    """The NVML side (`gpumetrics.sources.nvml_processes.NvmlProcessReader`)."""

    def read(self, errors: list[str]) -> tuple[GpuProcesses, ...]: ...

    def close(self) -> None: ...


class PodAttributionSource:
    """GPU -> pod attribution from `kubelet` when given, else from `processes` and the cgroups
    under `proc_root`; `processes` (None: no NVML) adds per-pod utilization. Closes both."""

    def __init__(
        self,
        *,
        kubelet: PodLister | None,
        processes: ProcessReader | None,
        proc_root: Path = Path("/proc"),
    ) -> None:
        if kubelet is None and processes is None:
            raise ValueError("pod attribution needs the kubelet or NVML process ids")
        self._kubelet = kubelet
        self._processes = processes
        self._proc_root = proc_root

    @property
    def name(self) -> str:
        return "pods"

    @property
    def mode(self) -> str:
        """`kubelet` or `cgroup`: where pod names come from."""
        return "kubelet" if self._kubelet is not None else "cgroup"

    def collect(self, now: float) -> Collection:
        errors: list[str] = []
        assignments = self._kubelet.list() if self._kubelet is not None else None
        gpus = self._processes.read(errors) if self._processes is not None else ()
        if assignments is not None:
            samples = _info(assignments) + self._kubelet_usage(assignments, gpus)
        else:
            samples = self._cgroup_samples(gpus)
        return Collection(tuple(samples), tuple(errors))

    def _kubelet_usage(
        self, assignments: tuple[Assignment, ...], gpus: Iterable[GpuProcesses]
    ) -> list[Sample]:
        holders: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for a in assignments:
            holders[a.device_id].add((a.namespace, a.pod))
        out: list[Sample] = []
        for gpu in gpus:
            pods = holders.get(gpu.gpu_uuid, set())
            if gpu.usage is None or len(pods) != 1:
                continue
            (namespace, pod) = next(iter(pods))
            sm = sum(use.sm_ratio for use in gpu.usage)
            memory = sum(use.memory_ratio for use in gpu.usage)
            out += _usage(gpu.gpu_uuid, namespace, pod, sm, memory)
        return out

    def _cgroup_samples(self, gpus: Iterable[GpuProcesses]) -> list[Sample]:
        info: list[Assignment] = []
        out: list[Sample] = []
        for gpu in gpus:
            pod_of: dict[int, str] = {}
            for pid in gpu.pids:
                owner = owner_of(pid, self._proc_root)
                if owner is None:
                    continue
                info.append(Assignment(gpu.gpu_uuid, "", "", owner.pod_uid, owner.container_id))
                if owner.pod_uid:
                    pod_of[pid] = owner.pod_uid
            if gpu.usage is None:
                continue
            sm: dict[str, float] = dict.fromkeys(pod_of.values(), 0.0)
            memory = dict(sm)
            for use in gpu.usage:
                pod = pod_of.get(use.pid)
                if pod is None:  # host process, or one not listed as running any more
                    continue
                sm[pod] += use.sm_ratio
                memory[pod] += use.memory_ratio
            for pod in sorted(sm):
                out += _usage(gpu.gpu_uuid, "", pod, sm[pod], memory[pod])
        return _info(info) + out

    def close(self) -> None:
        """Close the kubelet channel and release NVML."""
        if self._kubelet is not None:
            self._kubelet.close()
        if self._processes is not None:
            self._processes.close()


def _info(assignments: Iterable[Assignment]) -> list[Sample]:
    seen = {(a.device_id, a.namespace, a.pod, a.container) for a in assignments}
    return [p.GPU_POD_INFO.sample(1.0, *labels) for labels in sorted(seen)]


def _usage(gpu_uuid: str, namespace: str, pod: str, sm: float, memory: float) -> list[Sample]:
    return [
        p.POD_SM_UTILIZATION.sample(sm, gpu_uuid, namespace, pod),
        p.POD_MEMORY_UTILIZATION.sample(memory, gpu_uuid, namespace, pod),
    ]
