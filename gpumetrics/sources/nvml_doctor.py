"""What NVML supports on this node, and why not: the NVML half of `gpumetrics doctor`.

Each probe is one NVML call whose outcome is reported, never raised: the nvidia-ml-py release
and the names it lacks (those readings are not taken), library and driver, devices, the
spec-table match (peaks), MIG, GPM support and permission, NVLink links, the energy counter,
the naive utilization and XID event support.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pynvml

from ..errors import UnavailableError
from ..hardware import match_nvml_name
from ..samples import Check
from . import gpm, nvml_fields
from .nvml_lib import error_name, init_nvml, shutdown_nvml
from .nvml_names import NAMES, pynvml_version

__all__ = ["probe_nvml"]

_OK, _WARN, _FAIL, _SKIP = "ok", "warn", "fail", "skip"


def _try(function: Callable[..., Any], *args: Any) -> tuple[Any, str | None]:
    """(result, None) or (None, return-code name)."""
    try:
        return function(*args), None
    except pynvml.NVMLError as exc:
        return None, error_name(exc.value)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _gpm(handle: Any, area: str) -> Check:
    support, code = _try(pynvml.nvmlGpmQueryDeviceSupport, handle)
    if code or not getattr(support, "isSupportedDevice", 0):
        return Check(
            area,
            "GPM profiling",
            _SKIP,
            "not supported (pre-Hopper GPU or MIG slice)",
            "SM/tensor/DRAM active need Hopper or newer; naive utilization only here",
        )
    sample, code = _try(pynvml.nvmlGpmSampleAlloc)
    if code:
        return Check(area, "GPM profiling", _WARN, f"sample alloc failed: {code}", "")
    try:
        _, code = _try(pynvml.nvmlGpmSampleGet, handle, sample)
    finally:
        _try(pynvml.nvmlGpmSampleFree, sample)
    if code == "NVML_ERROR_NO_PERMISSION":
        return Check(
            area,
            "GPM profiling",
            _WARN,
            "supported, but sampling is not permitted",
            "run the exporter with CAP_SYS_ADMIN or as root, or set the driver's "
            "profiling permission (NVreg_RestrictProfilingToAdminUsers=0)",
        )
    if code:
        return Check(area, "GPM profiling", _WARN, f"sampling failed: {code}", "")
    return Check(area, "GPM profiling", _OK, "SM, tensor and DRAM active available")


def _nvlink(handle: Any, area: str) -> Check:
    values, code = _try(
        pynvml.nvmlDeviceGetFieldValues, handle, [pynvml.NVML_FI_DEV_NVLINK_LINK_COUNT]
    )
    count = 0
    if not code and values and values[0].nvmlReturn == pynvml.NVML_SUCCESS:
        count = int(values[0].value.uiVal)
    if count == 0:
        return Check(area, "NVLink", _SKIP, "no NVLink links", "")
    fields = [(pynvml.NVML_FI_DEV_NVLINK_GET_STATE, link) for link in range(count)]
    states, code = _try(pynvml.nvmlDeviceGetFieldValues, handle, fields)
    up = sum(
        1 for value in states or () if value.nvmlReturn == pynvml.NVML_SUCCESS and value.value.uiVal
    )
    status = _OK if up == count else _WARN
    return Check(
        area,
        "NVLink",
        status,
        f"{up} of {count} links active",
        "" if status == _OK else "inactive links: check `nvidia-smi nvlink -s`",
    )


def _field(handle: Any, field: int) -> str | None:
    values, code = _try(pynvml.nvmlDeviceGetFieldValues, handle, [field])
    if code:
        return code
    ret = int(values[0].nvmlReturn)
    return None if ret == pynvml.NVML_SUCCESS else error_name(ret)


def _device_checks(index: int) -> list[Check]:
    handle, code = _try(pynvml.nvmlDeviceGetHandleByIndex, index)
    area = f"gpu {index}"
    if code:
        return [
            Check(
                area,
                "device",
                _FAIL,
                f"cannot open: {code}",
                "the GPU may have fallen off the bus: check dmesg for Xid 79",
            )
        ]
    name = _text(_try(pynvml.nvmlDeviceGetName, handle)[0] or "?")
    uuid = _text(_try(pynvml.nvmlDeviceGetUUID, handle)[0] or "?")
    checks = [Check(area, "device", _OK, f"{name} ({uuid})")]
    spec = match_nvml_name(name)
    checks.append(
        Check(area, "peaks", _OK, f"spec table row {spec.key}: {spec.source}")
        if spec
        else Check(
            area,
            "peaks",
            _WARN,
            "not in the GPU spec table: no peak FLOP/s or bandwidth, so no MFU/MBU",
            "serve --gpu KEY_OR_NAME, or add the GPU to hardware.py",
        )
    )
    mig, code = _try(pynvml.nvmlDeviceGetMigMode, handle)
    if not code and mig and mig[0]:
        checks.append(
            Check(
                area,
                "MIG",
                _OK,
                'MIG enabled: slices are labelled gpu="N/mig-K"',
                "naive utilization is not available per MIG slice",
            )
        )
    checks.append(_gpm(handle, area))
    checks.append(_nvlink(handle, area))
    energy = _field(handle, pynvml.NVML_FI_DEV_ENERGY)
    checks.append(
        Check(
            area,
            "energy counter",
            _OK if energy is None else _WARN,
            "field 191 readable" if energy is None else f"field 191: {energy}",
            "" if energy is None else "power is still read; energy needs Volta+",
        )
    )
    _, code = _try(pynvml.nvmlDeviceGetUtilizationRates, handle)
    checks.append(
        Check(
            area,
            "naive utilization",
            _OK if code is None else _SKIP,
            "readable (share of time any kernel ran; not a load signal)" if code is None else code,
        )
    )
    events, code = _try(pynvml.nvmlDeviceGetSupportedEventTypes, handle)
    xid = not code and bool(int(events or 0) & pynvml.nvmlEventTypeXidCriticalError)
    checks.append(
        Check(
            area,
            "XID events",
            _OK if xid else _WARN,
            "XID errors are counted" if xid else f"not available ({code or 'no'})",
            "" if xid else "XID events need a physical GPU and driver support",
        )
    )
    return checks


#: The modules whose tables look their pynvml names up in NAMES (imported for that).
_RESOLVED_BY = (gpm.__name__, nvml_fields.__name__)


def _names_check() -> Check:
    """Which readings this nvidia-ml-py cannot name (each is then not supported)."""
    version = pynvml_version()
    missing = NAMES.missing
    if not missing:
        return Check("node", "nvidia-ml-py", _OK, f"{version}: names every reading taken")
    return Check(
        "node",
        "nvidia-ml-py",
        _WARN,
        f"{version} lacks {len(missing)}, not read: " + "; ".join(m.describe() for m in missing),
        "those readings are reported as not supported; nvidia-ml-py 13.615.71 names them all",
    )


def probe_nvml(dev_root: Path = Path("/dev")) -> list[Check]:
    """Every NVML finding for this node (and whether the device nodes are visible)."""
    checks: list[Check] = [_names_check()]
    ctl = dev_root / "nvidiactl"
    if ctl.exists():
        readable = os.access(ctl, os.R_OK | os.W_OK)
        checks.append(
            Check(
                "node",
                "device nodes",
                _OK if readable else _FAIL,
                f"{ctl} {'accessible' if readable else 'not accessible'}",
                "" if readable else "run as a user in the video group, or as root",
            )
        )
    try:
        init_nvml()
    except UnavailableError as exc:
        checks.append(Check("node", "NVML", _FAIL, exc.reason, exc.hint))
        return checks
    try:
        driver = _text(_try(pynvml.nvmlSystemGetDriverVersion)[0] or "?")
        cuda = _try(pynvml.nvmlSystemGetCudaDriverVersion_v2)[0]
        cuda_text = f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else "?"
        count, code = _try(pynvml.nvmlDeviceGetCount)
        checks.append(Check("node", "NVML", _OK, f"driver {driver}, CUDA {cuda_text}"))
        if code or not count:
            checks.append(
                Check(
                    "node",
                    "GPUs",
                    _FAIL,
                    code or "no GPUs visible",
                    "in a container, request GPUs (--gpus all / nvidia.com/gpu)",
                )
            )
            return checks
        checks.append(Check("node", "GPUs", _OK, f"{count} visible"))
        for index in range(int(count)):
            checks.extend(_device_checks(index))
    finally:
        shutdown_nvml()
    return checks
