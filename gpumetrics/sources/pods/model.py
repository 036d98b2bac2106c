"""What pod attribution works with: who holds a device, and who runs on it (no grpc, no NVML)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Assignment", "GpuProcesses", "Owner", "ProcessUse"]


@dataclass(frozen=True, slots=True)
class Assignment:
    """A device the kubelet assigned to a container. `device_id` is a GPU UUID (GPU-...) or a
    MIG device UUID (MIG-...), with a time-slicing replica suffix (`::3`) removed."""

    device_id: str
    resource: str
    namespace: str
    pod: str
    container: str


@dataclass(frozen=True, slots=True)
class Owner:
    """Where a process lives, read from its cgroup: pod UID and container id (either may be
    empty: a plain Docker container has no pod, a pod's sandbox has no container id)."""

    pod_uid: str
    container_id: str


@dataclass(frozen=True, slots=True)
class ProcessUse:
    """One process's mean utilization of a GPU over the samples since the last read, 0..1."""

    pid: int
    sm_ratio: float
    memory_ratio: float


@dataclass(frozen=True, slots=True)
class GpuProcesses:
    """The compute processes of one GPU or MIG device (`gpu_uuid`: GPU-... or MIG-...).

    `usage` is None where the device has no per-process utilization (MIG devices, GPUs in
    MIG mode, drivers that answer NOT_SUPPORTED); otherwise one entry per process sampled
    since the previous read (empty: nothing ran)."""

    gpu_uuid: str
    pids: tuple[int, ...]
    usage: tuple[ProcessUse, ...] | None
