"""FakeNvml: a pure-Python NVML behind pynvml's real wrappers (DESIGN.md §5).

Profiles (`h100x8`, `h200x8`, `a100`, `mig`, `minimal`) describe the boards; a workload
script on an injectable clock makes their counters move; fault injection makes them fail.
`gpumetrics serve --fake-gpus h200x8` runs the exporter on it as a demo.
"""

from __future__ import annotations

from .clock import ManualClock
from .core import FakeNvml
from .profiles import PROFILES, DeviceSpec, FakeProfile, MigSpec, parse_fake_gpus
from .state import FakeDevice
from .workload import DEFAULT_WORKLOAD, GpuRates, Phase, Workload

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
