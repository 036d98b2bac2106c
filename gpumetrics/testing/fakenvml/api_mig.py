"""Fake NVML: MIG GPU instances and their profiles (what `nvidia-smi mig -lgi` lists).

A MIG device handle answers its GPU instance id (`nvmlDeviceGetGpuInstanceId`) and compute
instance id (always 0: one compute instance per GPU instance). The parent GPU hands out an
opaque `nvmlGpuInstance_t` per instance id (`nvmlDeviceGetGpuInstanceById`), whose info
names the parent, the id, the profile id and the placement; the profile id's v2 info carries
the profile name NVML reports ("MIG 3g.40gb"), its slices and memory. MIG GPM samples
(`nvmlGpmMigSampleGet`) live in api_gpm.
"""

from __future__ import annotations

import ctypes

import pynvml

from ...units import MIB
from . import codes
from .registry import ApiFunction
from .state import FakeDevice, FakeState, address_of, as_int, deref, write_address

_DEVICE = pynvml.c_nvmlDevice_t

__all__ = ["FUNCTIONS"]

#: Streaming multiprocessors per compute slice of an H100 (132 SMs, 7 slices: 16 each).
_SMS_PER_SLICE = 16


def _gpu_instance_id(state: FakeState, device: FakeDevice, out: object) -> int:
    if not device.is_mig:
        return codes.INVALID_ARGUMENT
    deref(out).value = state.gpu_instance_id(device)
    return codes.SUCCESS


def _compute_instance_id(state: FakeState, device: FakeDevice, out: object) -> int:
    if not device.is_mig:
        return codes.INVALID_ARGUMENT
    deref(out).value = 0
    return codes.SUCCESS


def _gpu_instance_by_id(state: FakeState, device: FakeDevice, gi: object, out: object) -> int:
    if not device.spec.mig:
        return codes.NOT_SUPPORTED if device.spec.max_mig_devices == 0 else codes.INVALID_ARGUMENT
    child = state.mig_by_instance(device, as_int(gi))
    if child is None:
        return codes.NOT_FOUND
    address = next(a for a, d in state.gpu_instances.items() if d is child)
    write_address(out, address)
    return codes.SUCCESS


def _gpu_instance_info(state: FakeState, instance: object, out: object) -> int:
    address = address_of(instance)
    child = state.gpu_instances.get(address) if address is not None else None
    if child is None or child.mig is None or child.mig_index is None:
        return codes.INVALID_ARGUMENT
    if child.index in state.lost:
        return codes.GPU_IS_LOST
    info = deref(out)
    info.device = ctypes.cast(ctypes.c_void_p(state.devices[child.index].address), _DEVICE)
    info.id = state.gpu_instance_id(child)
    info.profileId = child.mig.profile_id
    start = sum(m.slices for m in child.spec.mig[: child.mig_index])
    info.placement.start = start
    info.placement.size = child.mig.slices
    return codes.SUCCESS


def _profile_info_by_id(state: FakeState, device: FakeDevice, profile: object, out: object) -> int:
    info = deref(out)
    if info.version != pynvml.nvmlGpuInstanceProfileInfo_v2:
        return codes.ARGUMENT_VERSION_MISMATCH
    profile_id = as_int(profile)
    specs = [m for m in device.spec.mig if m.profile_id == profile_id]
    if not device.spec.mig or not specs:
        return codes.NOT_SUPPORTED if device.spec.max_mig_devices == 0 else codes.INVALID_ARGUMENT
    spec = specs[0]
    info.id = profile_id
    info.isP2pSupported = 0
    info.sliceCount = spec.slices
    info.instanceCount = 7 // spec.slices
    info.multiprocessorCount = spec.slices * _SMS_PER_SLICE
    info.copyEngineCount = spec.slices
    info.memorySizeMB = spec.memory_bytes // MIB
    info.name = f"MIG {spec.profile}".encode()
    return codes.SUCCESS


FUNCTIONS = (
    ApiFunction("nvmlDeviceGetGpuInstanceId", _gpu_instance_id, device_arg=True, mig_ok=True),
    ApiFunction(
        "nvmlDeviceGetComputeInstanceId", _compute_instance_id, device_arg=True, mig_ok=True
    ),
    ApiFunction("nvmlDeviceGetGpuInstanceById", _gpu_instance_by_id, device_arg=True),
    ApiFunction("nvmlGpuInstanceGetInfo", _gpu_instance_info),
    ApiFunction("nvmlDeviceGetGpuInstanceProfileInfoByIdV", _profile_info_by_id, device_arg=True),
)
