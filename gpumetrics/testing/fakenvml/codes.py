"""NVML return codes the fake answers with, typed (pynvml itself is untyped)."""

from __future__ import annotations

from typing import Final

import pynvml

__all__ = [
    "ARGUMENT_VERSION_MISMATCH",
    "FUNCTION_NOT_FOUND",
    "GPU_IS_LOST",
    "INSUFFICIENT_SIZE",
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "NOT_SUPPORTED",
    "NO_PERMISSION",
    "SUCCESS",
    "TIMEOUT",
    "UNINITIALIZED",
]

SUCCESS: Final[int] = pynvml.NVML_SUCCESS
UNINITIALIZED: Final[int] = pynvml.NVML_ERROR_UNINITIALIZED
INVALID_ARGUMENT: Final[int] = pynvml.NVML_ERROR_INVALID_ARGUMENT
NOT_SUPPORTED: Final[int] = pynvml.NVML_ERROR_NOT_SUPPORTED
NO_PERMISSION: Final[int] = pynvml.NVML_ERROR_NO_PERMISSION
NOT_FOUND: Final[int] = pynvml.NVML_ERROR_NOT_FOUND
INSUFFICIENT_SIZE: Final[int] = pynvml.NVML_ERROR_INSUFFICIENT_SIZE
TIMEOUT: Final[int] = pynvml.NVML_ERROR_TIMEOUT
FUNCTION_NOT_FOUND: Final[int] = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
GPU_IS_LOST: Final[int] = pynvml.NVML_ERROR_GPU_IS_LOST
ARGUMENT_VERSION_MISMATCH: Final[int] = pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH
