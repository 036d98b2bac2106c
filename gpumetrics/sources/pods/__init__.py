"""Pod attribution: which Kubernetes pod (or container) holds each GPU, and how much of it
each pod uses. `kubelet` reads the PodResources API (grpcio, the `k8s` extra), `cgroup` the
fallback from NVML process ids to `/proc/<pid>/cgroup`, `source` the Sampler's source."""

from __future__ import annotations

from .cgroup import owner_of, parse_cgroup
from .model import Assignment, GpuProcesses, Owner, ProcessUse
from .source import MODES, PodAttributionSource, PodLister, ProcessReader

__all__ = [
    "MODES",
    "Assignment",
    "GpuProcesses",
    "Owner",
    "PodAttributionSource",
    "PodLister",
    "ProcessReader",
    "ProcessUse",
    "owner_of",
    "parse_cgroup",
]
