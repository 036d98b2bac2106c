"""Fake NVML: library lifetime, system queries, device enumeration and MIG handles."""

from __future__ import annotations

import pynvml

from . import codes
from .registry import ApiFunction
from .state import FakeDevice, FakeState, as_int, deref, write_address

__all__ = ["FUNCTIONS", "write_text"]


#: nvmlErrorString texts (nvml.h), for the codes pynvml does not spell out itself.
_ERROR_STRINGS = {
    codes.SUCCESS: b"Success",
    pynvml.NVML_ERROR_IN_USE: b"In use by another client",
    pynvml.NVML_ERROR_NO_DATA: b"No data",
    pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES: b"Insufficient resources",
    codes.ARGUMENT_VERSION_MISMATCH: b"Argument version mismatch",
    pynvml.NVML_ERROR_DEPRECATED: b"Deprecated",
    pynvml.NVML_ERROR_NOT_READY: b"Not ready",
    pynvml.NVML_ERROR_GPU_NOT_FOUND: b"GPU not found",
    pynvml.NVML_ERROR_INVALID_STATE: b"Invalid state",
}


def write_text(buffer: object, length: object, text: str) -> int:
    """Copy `text` NUL-terminated into a `char[length]` buffer (INSUFFICIENT_SIZE if short)."""
    data = text.encode()
    if len(data) + 1 > as_int(length):
        return codes.INSUFFICIENT_SIZE
    deref(buffer).value = data
    return codes.SUCCESS


def _init(state: FakeState, *_flags: object) -> int:
    state.init_count += 1
    return codes.SUCCESS


def _shutdown(state: FakeState) -> int:
    if state.init_count == 0:
        return codes.UNINITIALIZED
    state.init_count -= 1
    return codes.SUCCESS


def _error_string(state: FakeState, code: object) -> bytes:
    return _ERROR_STRINGS.get(as_int(code), b"Unknown Error")


def _driver_version(state: FakeState, buffer: object, length: object) -> int:
    return write_text(buffer, length, state.profile.driver_version)


def _nvml_version(state: FakeState, buffer: object, length: object) -> int:
    return write_text(buffer, length, state.profile.nvml_version)


def _cuda_version(state: FakeState, out: object) -> int:
    deref(out).value = state.profile.cuda_version
    return codes.SUCCESS


def _count(state: FakeState, out: object) -> int:
    deref(out).value = len(state.devices)
    return codes.SUCCESS


def _handle_by_index(state: FakeState, index: object, out: object) -> int:
    i = as_int(index)
    if not 0 <= i < len(state.devices):
        return codes.INVALID_ARGUMENT
    if i in state.lost:
        return codes.GPU_IS_LOST
    write_address(out, state.devices[i].address)
    return codes.SUCCESS


def _handle_by_uuid(state: FakeState, uuid: object, out: object) -> int:
    raw = getattr(uuid, "value", uuid)  # a c_char_p from pynvml
    wanted = raw.decode() if isinstance(raw, bytes) else str(raw)
    for device in state.by_address.values():
        if device.uuid == wanted:
            if device.index in state.lost:
                return codes.GPU_IS_LOST
            write_address(out, device.address)
            return codes.SUCCESS
    return codes.NOT_FOUND


def _index(state: FakeState, device: FakeDevice, out: object) -> int:
    deref(out).value = device.index
    return codes.SUCCESS


def _mig_mode(state: FakeState, device: FakeDevice, current: object, pending: object) -> int:
    if device.spec.max_mig_devices == 0:
        return codes.NOT_SUPPORTED
    mode = pynvml.NVML_DEVICE_MIG_ENABLE if device.spec.mig else pynvml.NVML_DEVICE_MIG_DISABLE
    deref(current).value = mode
    deref(pending).value = mode
    return codes.SUCCESS


def _max_mig_count(state: FakeState, device: FakeDevice, out: object) -> int:
    if device.spec.max_mig_devices == 0:
        return codes.NOT_SUPPORTED
    deref(out).value = device.spec.max_mig_devices
    return codes.SUCCESS


def _mig_handle(state: FakeState, device: FakeDevice, index: object, out: object) -> int:
    if not device.spec.mig:
        return codes.INVALID_ARGUMENT
    children = state.mig_devices[device.index]
    i = as_int(index)
    if not 0 <= i < len(children):
        return codes.NOT_FOUND
    write_address(out, children[i].address)
    return codes.SUCCESS


def _is_mig(state: FakeState, device: FakeDevice, out: object) -> int:
    deref(out).value = 1 if device.is_mig else 0
    return codes.SUCCESS


def _parent_of_mig(state: FakeState, device: FakeDevice, out: object) -> int:
    if not device.is_mig:
        return codes.INVALID_ARGUMENT
    write_address(out, state.devices[device.index].address)
    return codes.SUCCESS


FUNCTIONS = (
    ApiFunction("nvmlInitWithFlags", _init, needs_init=False),
    ApiFunction("nvmlInit_v2", _init, needs_init=False),
    ApiFunction("nvmlInit", _init, needs_init=False),
    ApiFunction("nvmlShutdown", _shutdown, needs_init=False),
    ApiFunction("nvmlErrorString", _error_string, needs_init=False),
    ApiFunction("nvmlSystemGetDriverVersion", _driver_version),
    ApiFunction("nvmlSystemGetNVMLVersion", _nvml_version),
    ApiFunction("nvmlSystemGetCudaDriverVersion", _cuda_version),
    ApiFunction("nvmlSystemGetCudaDriverVersion_v2", _cuda_version),
    ApiFunction("nvmlDeviceGetCount_v2", _count),
    ApiFunction("nvmlDeviceGetHandleByIndex_v2", _handle_by_index),
    ApiFunction("nvmlDeviceGetHandleByUUID", _handle_by_uuid),
    ApiFunction("nvmlDeviceGetIndex", _index, device_arg=True),
    ApiFunction("nvmlDeviceGetMigMode", _mig_mode, device_arg=True),
    ApiFunction("nvmlDeviceGetMaxMigDeviceCount", _max_mig_count, device_arg=True),
    ApiFunction("nvmlDeviceGetMigDeviceHandleByIndex", _mig_handle, device_arg=True),
    ApiFunction("nvmlDeviceIsMigDeviceHandle", _is_mig, device_arg=True, mig_ok=True),
    ApiFunction(
        "nvmlDeviceGetDeviceHandleFromMigDeviceHandle", _parent_of_mig, device_arg=True, mig_ok=True
    ),
)
