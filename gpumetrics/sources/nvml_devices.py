"""What the NVML source reads once: GPUs, MIG devices, and their static samples.

Labels: `gpu` is the NVML index ("0") for a GPU and "<index>/mig-<n>" for the n-th MIG device
of a MIG-enabled GPU (`nvmlDeviceGetMigDeviceHandleByIndex` order, as `nvidia-smi -L` lists
them); `gpu_model` is the NVML name (a MIG device's ends in "MIG 3g.40gb"). The info
metric's `mig` label is "enabled" or "disabled" on a GPU and the MIG profile ("3g.40gb") on
a MIG device. Peaks come from the spec table (or the user's override) for GPUs only: a MIG
slice's share of them is the consumer's to apply.

A MIG device also knows its GPU instance id (`nvmlDeviceGetGpuInstanceId`) and takes its
profile from the instance's profile info (`nvmlDeviceGetGpuInstanceById` ->
`nvmlGpuInstanceGetInfo` -> `nvmlDeviceGetGpuInstanceProfileInfoById`, whose name reads
"MIG 3g.40gb"), else from the end of its NVML name; GPM samples it per GPU instance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pynvml

from ..catalog import gpu as g
from ..hardware import DTYPES, GpuSpec, match_nvml_name
from ..samples import Labels, Sample
from .nvml_fields import FieldRead, field_reads, field_value
from .nvml_lib import GpuLostError, error_name, nvml_call
from .nvml_names import NAMES

#: nvmlDeviceGetGpuInstanceProfileInfoById (absent before nvidia-ml-py 12.570: the profile
#: then comes from the MIG device's name).
_PROFILE_INFO_BY_ID = NAMES.functions(
    "nvmlDeviceGetGpuInstanceProfileInfoById", what="MIG profile info by id"
)

__all__ = ["CLOCK_DOMAINS", "DriverInfo", "NvmlDevice", "discover", "read_driver"]

#: Clock label -> NVML clock type (nvidia-smi --query-gpu=clocks.gr,clocks.sm,clocks.mem).
CLOCK_DOMAINS: tuple[tuple[str, int], ...] = (
    ("graphics", pynvml.NVML_CLOCK_GRAPHICS),
    ("sm", pynvml.NVML_CLOCK_SM),
    ("memory", pynvml.NVML_CLOCK_MEM),
)
_MHZ = 1e6
_MIG_PROFILE = re.compile(r"\bMIG\s+(\S+)\s*$")


@dataclass(frozen=True, slots=True)
class DriverInfo:
    """Driver and CUDA versions (nvidia-smi header: "Driver Version", "CUDA Version")."""

    driver_version: str
    cuda_version: str


@dataclass(frozen=True, slots=True)
class NvmlDevice:
    """A GPU or MIG device the source samples, and what was read about it once.

    `index` is the physical GPU's NVML index (a MIG device shares its parent's). `static`
    holds the samples that do not change: info, memory total, max clocks, peaks.
    """

    key: str
    index: int
    handle: Any
    name: str
    uuid: str
    links: int = 0
    gpm: bool = False
    mig_mode: bool = False
    mig_profile: str | None = None
    gpu_instance_id: int | None = None
    reads: tuple[FieldRead, ...] = ()
    static: tuple[Sample, ...] = ()

    @property
    def labels(self) -> Labels:
        """(gpu, gpu_uuid, gpu_model) label values."""
        return (self.key, self.uuid, self.name)

    @property
    def is_mig(self) -> bool:
        return self.mig_profile is not None

    @property
    def mig_labels(self) -> Labels:
        """(gpu, gpu_uuid, gpu_model, gpu_instance_id, mig_profile) of a MIG device."""
        gi = "" if self.gpu_instance_id is None else str(self.gpu_instance_id)
        return (*self.labels, gi, self.mig_profile or "")


def read_driver(errors: list[str]) -> DriverInfo:
    """Driver version string and CUDA driver version as "12.8" ("" when unknown)."""
    driver = nvml_call(errors, pynvml.nvmlSystemGetDriverVersion) or ""
    cuda = nvml_call(errors, pynvml.nvmlSystemGetCudaDriverVersion_v2)
    cuda_text = f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else ""
    return DriverInfo(str(driver), cuda_text)


def _link_count(handle: Any, name: str, errors: list[str]) -> int:
    """NVLink links (field 91; nvidia-smi nvlink -s lists them). When the read fails for a
    reason other than "not supported", the spec table's count for this GPU stands in, so a
    transient error at start does not hide NVLink for the life of the source."""
    failed: list[str] = []
    values = nvml_call(
        failed, pynvml.nvmlDeviceGetFieldValues, handle, [pynvml.NVML_FI_DEV_NVLINK_LINK_COUNT]
    )
    errors.extend(failed)
    if values:
        code = int(values[0].nvmlReturn)
        if code == pynvml.NVML_SUCCESS:
            return int(field_value(values[0]) or 0)
        if code == pynvml.NVML_ERROR_GPU_IS_LOST:
            raise GpuLostError(error_name(code))
        if code != pynvml.NVML_ERROR_NOT_SUPPORTED:
            failed.append(error_name(code))
            errors.append(error_name(code))
    spec = match_nvml_name(name) if failed else None
    return spec.nvlink_links if spec is not None else 0


def _gpm_supported(handle: Any, errors: list[str]) -> bool:
    support = nvml_call(errors, pynvml.nvmlGpmQueryDeviceSupport, handle)
    return bool(support is not None and support.isSupportedDevice)


def _peaks(spec: GpuSpec | None, labels: Labels) -> list[Sample]:
    if spec is None:
        return []
    peaks = [
        g.PEAK_FLOPS.sample(spec.peak_flops[d], *labels, d) for d in DTYPES if d in spec.peak_flops
    ]
    peaks.append(g.PEAK_MEMORY_BANDWIDTH.sample(spec.hbm_bandwidth, *labels))
    if spec.nvlink_bandwidth > 0:
        peaks.append(g.PEAK_NVLINK_BANDWIDTH.sample(spec.nvlink_bandwidth, *labels))
    return peaks


def _static(
    handle: Any,
    labels: Labels,
    info: DriverInfo,
    pci_bus_id: str,
    mig_label: str,
    errors: list[str],
) -> list[Sample]:
    samples = [
        g.GPU_INFO.sample(
            1.0, *labels, pci_bus_id, info.driver_version, info.cuda_version, mig_label
        )
    ]
    memory = nvml_call(errors, pynvml.nvmlDeviceGetMemoryInfo, handle)
    if memory is not None:
        samples.append(g.GPU_MEMORY_TOTAL.sample(float(memory.total), *labels))
    return samples


def _physical(
    index: int, info: DriverInfo, override: GpuSpec | None, errors: list[str], per_link: bool
) -> list[NvmlDevice]:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    name = str(nvml_call(errors, pynvml.nvmlDeviceGetName, handle) or "")
    uuid = str(nvml_call(errors, pynvml.nvmlDeviceGetUUID, handle) or "")
    pci = nvml_call(errors, pynvml.nvmlDeviceGetPciInfo_v3, handle)
    pci_bus_id = str(pci.busId) if pci is not None else ""
    mode = nvml_call(errors, pynvml.nvmlDeviceGetMigMode, handle)
    mig_on = bool(mode is not None and mode[0] == pynvml.NVML_DEVICE_MIG_ENABLE)
    links = _link_count(handle, name, errors)
    labels = (str(index), uuid, name)
    static = _static(handle, labels, info, pci_bus_id, "enabled" if mig_on else "disabled", errors)
    for clock, clock_type in CLOCK_DOMAINS:
        mhz = nvml_call(errors, pynvml.nvmlDeviceGetMaxClockInfo, handle, clock_type)
        if mhz is not None:
            static.append(g.GPU_CLOCK_MAX.sample(float(mhz) * _MHZ, *labels, clock))
    static.extend(_peaks(override or match_nvml_name(name), labels))
    if links > 0:
        static.append(g.NVLINK_LINKS.sample(float(links), *labels))
    gpu = NvmlDevice(
        key=str(index),
        index=index,
        handle=handle,
        name=name,
        uuid=uuid,
        links=links,
        gpm=_gpm_supported(handle, errors),
        mig_mode=mig_on,
        reads=field_reads(links, per_link),
        static=tuple(static),
    )
    return [gpu, *(_mig_devices(gpu, info, pci_bus_id, errors) if mig_on else ())]


def _mig_devices(
    parent: NvmlDevice, info: DriverInfo, pci_bus_id: str, errors: list[str]
) -> list[NvmlDevice]:
    count = nvml_call(errors, pynvml.nvmlDeviceGetMaxMigDeviceCount, parent.handle) or 0
    devices = []
    for slot in range(int(count)):
        try:
            handle = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent.handle, slot)
        except pynvml.NVMLError_NotFound:
            continue
        except pynvml.NVMLError as exc:
            if exc.value == pynvml.NVML_ERROR_GPU_IS_LOST:
                raise GpuLostError(error_name(exc.value)) from exc
            errors.append(error_name(exc.value))
            continue
        name = str(nvml_call(errors, pynvml.nvmlDeviceGetName, handle) or parent.name)
        uuid = str(nvml_call(errors, pynvml.nvmlDeviceGetUUID, handle) or "")
        gi = nvml_call(errors, pynvml.nvmlDeviceGetGpuInstanceId, handle)
        match = _MIG_PROFILE.search(name)
        profile = _instance_profile(parent.handle, gi, errors) if gi is not None else None
        profile = profile or (match.group(1) if match else "mig")
        labels = (f"{parent.key}/mig-{slot}", uuid, name)
        static = _static(handle, labels, info, pci_bus_id, profile, errors)
        devices.append(
            NvmlDevice(
                key=labels[0],
                index=parent.index,
                handle=handle,
                name=name,
                uuid=uuid,
                mig_profile=profile,
                gpu_instance_id=int(gi) if gi is not None else None,
                static=tuple(static),
            )
        )
    return devices


def _instance_profile(parent: Any, gi: int, errors: list[str]) -> str | None:
    """GPU instance `gi`'s profile name ("3g.40gb") from its profile info, or None where this
    pynvml or driver cannot say."""
    if not _PROFILE_INFO_BY_ID:
        return None
    instance = nvml_call(errors, pynvml.nvmlDeviceGetGpuInstanceById, parent, gi)
    info = nvml_call(errors, pynvml.nvmlGpuInstanceGetInfo, instance) if instance else None
    if info is None:
        return None
    profile = nvml_call(errors, _PROFILE_INFO_BY_ID[0], parent, int(info.profileId))
    name = profile.name if profile is not None else b""
    text = (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).strip()
    return text.removeprefix("MIG ").strip() or None


def discover(
    info: DriverInfo, override: GpuSpec | None, errors: list[str], *, per_link: bool = False
) -> tuple[list[NvmlDevice], list[int]]:
    """Every GPU (then its MIG devices), and the indices of GPUs already lost. `per_link`
    requests the per-link NVLink series (else only the per-GPU NVLink totals).

    nvidia-smi equivalent: `nvidia-smi -L` plus `nvidia-smi -q` for names, UUIDs and buses.
    """
    count = pynvml.nvmlDeviceGetCount()
    devices: list[NvmlDevice] = []
    lost: list[int] = []
    for index in range(count):
        try:
            devices.extend(_physical(index, info, override, errors, per_link))
        except (GpuLostError, pynvml.NVMLError_GpuIsLost):
            lost.append(index)
            devices.append(NvmlDevice(str(index), index, None, "", ""))
        except pynvml.NVMLError as exc:  # e.g. NO_PERMISSION on one GPU: skip it, say why
            errors.append(error_name(exc.value))
    return devices, lost
