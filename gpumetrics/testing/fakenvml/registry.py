"""How a fake NVML C function is described to the dispatcher."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ApiFunction"]


@dataclass(frozen=True, slots=True)
class ApiFunction:
    """One NVML entry point.

    `impl` receives the FakeState first. With `device_arg`, the first C argument is an
    `nvmlDevice_t` that the dispatcher resolves (unknown handle: INVALID_ARGUMENT; lost GPU:
    GPU_IS_LOST; listed in the device's `unsupported_functions`: NOT_SUPPORTED) and `impl`
    receives the FakeDevice in its place. `mig_ok` functions also answer on MIG device
    handles (the others say NOT_SUPPORTED there). `needs_init` functions answer
    UNINITIALIZED before nvmlInit. `blocking` functions run outside the state lock.
    """

    name: str
    impl: Callable[..., object]
    device_arg: bool = False
    mig_ok: bool = False
    needs_init: bool = True
    blocking: bool = False
