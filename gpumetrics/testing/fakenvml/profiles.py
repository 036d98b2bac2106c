"""Device profiles for FakeNvml, and the `--fake-gpus` spec parser.

A spec is `<model>[x<count>]`: `h100x8`, `h200x8`, `a100`, `a100x4`, `mig`, `minimal`.

| model     | NVML name                | NVLink links | GPM | notes                              |
|-----------|--------------------------|--------------|-----|------------------------------------|
| `h100`    | NVIDIA H100 80GB HBM3    | 18           | yes |                                    |
| `h200`    | NVIDIA H200              | 18           | yes | as measured on a real H200 (below) |
| `a100`    | NVIDIA A100-SXM4-80GB    | 12           | no  | GpmQueryDeviceSupport: unsupported |
| `mig`     | NVIDIA H100 80GB HBM3    | 18           | yes | MIG on: 3g.40gb, 3g.40gb, 1g.10gb; |
|           |                          |              |     | GPU instances 1, 2, 9 at GPM       |
|           |                          |              |     | activity x1, x0.5, x0.25; naive    |
|           |                          |              |     | utilization NOT_SUPPORTED          |
| `minimal` | Tesla T4                 | 0            | no  | only power and energy fields; no   |
|           |                          |              |     | memory v2, max clocks, reasons     |

Memory sizes are what NVML reports for these boards (an 80GB H100 reports 81,559 MiB).

The H200 is what NVML reported on a real H200 SXM 141GB (driver 580.159.04, CUDA 13.0;
tests/data/h200/ and `nvidia-smi -q` there): 150,754,820,096 bytes total (143,771 MiB),
644,939,776 reserved, power limit 700 W, max clocks 1,980 MHz graphics and SM and 3,201 MHz
memory, PCI device 0x233510DE, subsystem 0x18BF10DE. That machine was a single pass-through
GPU without NVLink; the fake keeps an HGX board's 18 links. What it does over time is the
`h200` workload (`gpumetrics.testing.workloads`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import pynvml

from ...errors import ConfigError
from ...units import MIB
from .workload import DEFAULT_WORKLOAD, Workload

__all__ = [
    "PROFILES",
    "DeviceSpec",
    "FakeProfile",
    "MigSpec",
    "parse_fake_gpus",
]


@dataclass(frozen=True, slots=True)
class MigSpec:
    """One MIG device (GPU instance + compute instance) on a MIG-enabled GPU.

    `gpu_instance_id` is the GPU instance's id (None: its position + 1); `profile_id` the
    NVML_GPU_INSTANCE_PROFILE_* it was created with and `slices` its compute slices (of 7).
    `activity` scales the parent GPU's workload ratios for this instance's GPM metrics
    (nvmlGpmMigSampleGet): 0.5 shows half the parent phase's SM/tensor/DRAM activity.
    """

    profile: str
    memory_bytes: int
    reserved_bytes: int = 0
    gpu_instance_id: int | None = None
    profile_id: int = 0
    slices: int = 1
    activity: float = 1.0


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A fake board: what NVML reports about it and what it does not support.

    `supported_fields` None means every field FakeNvml knows; otherwise only those ids answer
    and the rest read NOT_SUPPORTED per field. `unsupported_functions` answer
    NVML_ERROR_NOT_SUPPORTED on this device's handle. A non-empty `mig` means MIG mode on.
    """

    name: str
    memory_bytes: int
    reserved_bytes: int
    pci_device_id: int
    nvlink_links: int
    nvlink_speed_mbps: int
    gpm: bool
    power_limit_watts: float
    max_clocks_mhz: Mapping[int, int]
    supported_fields: frozenset[int] | None = None
    unsupported_functions: frozenset[str] = frozenset()
    mig: tuple[MigSpec, ...] = ()
    max_mig_devices: int = 0
    pci_subsystem_id: int = 0x16C110DE


@dataclass(frozen=True, slots=True)
class FakeProfile:
    """A machine: its GPUs, its driver, and the workload they run."""

    name: str
    devices: tuple[DeviceSpec, ...]
    driver_version: str = "570.124.06"
    nvml_version: str = "12.570.124.06"
    cuda_version: int = 12080
    workload: Workload = DEFAULT_WORKLOAD


def _clocks(graphics: int, sm: int, memory: int) -> Mapping[int, int]:
    return MappingProxyType(
        {
            pynvml.NVML_CLOCK_GRAPHICS: graphics,
            pynvml.NVML_CLOCK_SM: sm,
            pynvml.NVML_CLOCK_MEM: memory,
        }
    )


H100 = DeviceSpec(
    name="NVIDIA H100 80GB HBM3",
    memory_bytes=81559 * MIB,
    reserved_bytes=544 * MIB,
    pci_device_id=0x233010DE,
    nvlink_links=18,
    nvlink_speed_mbps=26562,
    gpm=True,
    power_limit_watts=700.0,
    max_clocks_mhz=_clocks(1980, 1980, 2619),
    max_mig_devices=7,
)
H200 = replace(
    H100,
    name="NVIDIA H200",
    memory_bytes=143771 * MIB,
    reserved_bytes=644_939_776,
    pci_device_id=0x233510DE,
    pci_subsystem_id=0x18BF10DE,
    max_clocks_mhz=_clocks(1980, 1980, 3201),
)
A100 = DeviceSpec(
    name="NVIDIA A100-SXM4-80GB",
    memory_bytes=81920 * MIB,
    reserved_bytes=527 * MIB,
    pci_device_id=0x20B210DE,
    nvlink_links=12,
    nvlink_speed_mbps=25781,
    gpm=False,
    power_limit_watts=400.0,
    max_clocks_mhz=_clocks(1410, 1410, 1593),
    max_mig_devices=7,
)
_ONE_SLICE = pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE
_THREE_SLICE = pynvml.NVML_GPU_INSTANCE_PROFILE_3_SLICE
H100_MIG = replace(
    H100,
    unsupported_functions=frozenset({"nvmlDeviceGetUtilizationRates"}),
    mig=(
        MigSpec("3g.40gb", 40192 * MIB, 128 * MIB, 1, _THREE_SLICE, 3, 1.0),
        MigSpec("3g.40gb", 40192 * MIB, 128 * MIB, 2, _THREE_SLICE, 3, 0.5),
        MigSpec("1g.10gb", 9856 * MIB, 64 * MIB, 9, _ONE_SLICE, 1, 0.25),
    ),
)
T4_MINIMAL = DeviceSpec(
    name="Tesla T4",
    memory_bytes=15360 * MIB,
    reserved_bytes=254 * MIB,
    pci_device_id=0x1EB810DE,
    nvlink_links=0,
    nvlink_speed_mbps=0,
    gpm=False,
    power_limit_watts=70.0,
    max_clocks_mhz=_clocks(1590, 1590, 5001),
    supported_fields=frozenset(
        {pynvml.NVML_FI_DEV_POWER_INSTANT, pynvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION}
        | {pynvml.NVML_FI_DEV_ENERGY}
    ),
    unsupported_functions=frozenset(
        {
            "nvmlDeviceGetMemoryInfo_v2",
            "nvmlDeviceGetMaxClockInfo",
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
            "nvmlDeviceGetComputeRunningProcesses_v3",
            "nvmlDeviceGetMigMode",
            "nvmlDeviceRegisterEvents",
        }
    ),
)

#: Board per model key of a spec string, and its default count.
_MODELS: Mapping[str, tuple[DeviceSpec, int]] = MappingProxyType(
    {
        "h100": (H100, 8),
        "h200": (H200, 8),
        "a100": (A100, 1),
        "mig": (H100_MIG, 1),
        "minimal": (T4_MINIMAL, 1),
    }
)
#: (driver version, NVML version, CUDA driver version) per model where it is not the default.
_DRIVERS: Mapping[str, tuple[str, str, int]] = MappingProxyType(
    {"h200": ("580.159.04", "13.580.159.04", 13000)}
)
_SPEC = re.compile(r"^\s*([a-z0-9]+?)(?:x(\d+))?\s*$")
_MAX_GPUS = 64


def parse_fake_gpus(spec: str) -> FakeProfile:
    """The profile for a `--fake-gpus` spec: `h200x8` is eight H200s, `a100` one A100.

    A bare model uses its default count (8 for h100/h200, 1 otherwise). ConfigError lists the
    known models.
    """
    match = _SPEC.match(spec.lower())
    model = _MODELS.get(match.group(1)) if match else None
    if match is None or model is None:
        known = ", ".join(f"{key}[xN]" for key in _MODELS)
        raise ConfigError("--fake-gpus", f"unknown fake GPU spec {spec!r}; known: {known}")
    device, default_count = model
    count = int(match.group(2)) if match.group(2) else default_count
    if not 1 <= count <= _MAX_GPUS:
        raise ConfigError("--fake-gpus", f"GPU count must be 1..{_MAX_GPUS}, got {count}")
    profile = FakeProfile(name=spec.strip().lower(), devices=(device,) * count)
    driver = _DRIVERS.get(match.group(1))
    if driver is not None:
        profile = replace(
            profile, driver_version=driver[0], nvml_version=driver[1], cuda_version=driver[2]
        )
    return profile


#: The named profiles of DESIGN.md §5, by spec string.
PROFILES: Mapping[str, FakeProfile] = MappingProxyType(
    {name: parse_fake_gpus(name) for name in ("h100x8", "h200x8", "a100", "mig", "minimal")}
)
