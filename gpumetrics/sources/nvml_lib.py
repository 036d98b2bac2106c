"""The thin adapter over pynvml: initialisation with a typed error, return-code names, and a
call helper that turns NVML's errors into absence, recorded failures or a lost GPU.

Error policy (DESIGN.md §3.5): NVML_ERROR_NOT_SUPPORTED and NVML_ERROR_FUNCTION_NOT_FOUND mean
"this GPU or driver has no such value": no sample, no error. NVML_ERROR_GPU_IS_LOST means the
GPU fell off the bus (GpuLostError). Anything else (NO_PERMISSION, TIMEOUT, UNKNOWN, ...) is a
partial failure recorded by its return-code name, e.g. "NVML_ERROR_TIMEOUT".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import cache
from typing import Any

import pynvml

from ..errors import UnavailableError

__all__ = [
    "ABSENT_CODES",
    "UNAVAILABLE_HINT",
    "GpuLostError",
    "error_name",
    "init_nvml",
    "note_error",
    "nvml_call",
    "shutdown_nvml",
]

#: What to do when NVML cannot be used here.
UNAVAILABLE_HINT = (
    "install the NVIDIA driver (nvidia-smi must work); in a container, mount libnvidia-ml.so.1 "
    "(NVIDIA Container Toolkit: --gpus all or runtime: nvidia); or run with --fake-gpus h100x8 "
    "for a demo on fake GPUs"
)

#: Return codes that mean "not here" rather than "went wrong".
ABSENT_CODES = frozenset({pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND})


class GpuLostError(Exception):
    """An NVML call answered NVML_ERROR_GPU_IS_LOST: the GPU fell off the bus."""


@cache
def _names() -> dict[int, str]:
    names: dict[int, str] = {}
    for attribute in sorted(dir(pynvml)):
        if attribute.startswith("NVML_ERROR_") or attribute == "NVML_SUCCESS":
            value = getattr(pynvml, attribute)
            if isinstance(value, int):
                names.setdefault(value, attribute)
    return names


def error_name(code: int) -> str:
    """The nvml.h name of a return code: 15 -> "NVML_ERROR_GPU_IS_LOST"."""
    return _names().get(code, f"NVML_ERROR_{code}")


def init_nvml() -> None:
    """nvmlInit, or UnavailableError saying why and what to do (nvidia-smi equivalent: any
    nvidia-smi call failing with "couldn't communicate with the NVIDIA driver")."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound as exc:
        raise UnavailableError("NVML", "libnvidia-ml.so.1 was not found", UNAVAILABLE_HINT) from exc
    except pynvml.NVMLError_DriverNotLoaded as exc:
        raise UnavailableError("NVML", "the NVIDIA driver is not loaded", UNAVAILABLE_HINT) from exc
    except pynvml.NVMLError as exc:
        raise UnavailableError(
            "NVML", f"nvmlInit failed with {error_name(exc.value)}", UNAVAILABLE_HINT
        ) from exc


def shutdown_nvml() -> None:
    """nvmlShutdown, ignoring errors (the library may already be gone)."""
    with contextlib.suppress(pynvml.NVMLError):
        pynvml.nvmlShutdown()


def note_error(errors: list[str], exc: pynvml.NVMLError) -> None:
    """Apply the error policy to a caught NVMLError: a lost GPU raises GpuLostError, absence
    is ignored, anything else appends its code name to `errors`."""
    code = exc.value
    if code == pynvml.NVML_ERROR_GPU_IS_LOST:
        raise GpuLostError(error_name(code)) from exc
    if code not in ABSENT_CODES:
        errors.append(error_name(code))


def nvml_call(errors: list[str], function: Callable[..., Any], *args: Any) -> Any:
    """`function(*args)`, or None when the value is absent or the call failed (see
    `note_error` for what happens to the failure)."""
    try:
        return function(*args)
    except pynvml.NVMLError as exc:
        note_error(errors, exc)
        return None
