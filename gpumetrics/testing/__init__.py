"""Shipped fakes for tests and demos: FakeNvml (a fake NVML behind pynvml) and its profiles.

The fake InfiniBand sysfs tree lives in `gpumetrics.testing.sysfs`.
"""

from __future__ import annotations

from .fakenvml import (
    DEFAULT_WORKLOAD,
    PROFILES,
    DeviceSpec,
    FakeDevice,
    FakeNvml,
    FakeProfile,
    GpuRates,
    ManualClock,
    MigSpec,
    Phase,
    Workload,
    parse_fake_gpus,
)

__all__ = [
    "DEFAULT_WORKLOAD",
    "PROFILES",
    "DeviceSpec",
    "FakeDevice",
    "FakeNvml",
    "FakeProfile",
    "GpuRates",
    "ManualClock",
    "MigSpec",
    "Phase",
    "Workload",
    "parse_fake_gpus",
]
