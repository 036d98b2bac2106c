"""Fake NVML: per-device queries (identity, memory, utilization, clocks, fields, processes)."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

import pynvml

from . import codes
from .api_system import write_text
from .fields import read_field
from .registry import ApiFunction
from .state import FakeDevice, FakeState, as_int, deref
from .workload import GpuRates

__all__ = ["FUNCTIONS", "REASON_BITS"]


#: Clock event (throttle) reason name -> bit of nvmlDeviceGetCurrentClocksEventReasons.
REASON_BITS = MappingProxyType(
    {
        "gpu_idle": 0x001,
        "applications_clocks_setting": 0x002,
        "sw_power_cap": 0x004,
        "hw_slowdown": 0x008,
        "sync_boost": 0x010,
        "sw_thermal_slowdown": 0x020,
        "hw_thermal_slowdown": 0x040,
        "hw_power_brake_slowdown": 0x080,
        "display_clock_setting": 0x100,
        "board_limit": 0x200,
        "reliability": 0x400,
    }
)
_NO_INSTANCE = 0xFFFFFFFF


def _rates(state: FakeState, device: FakeDevice) -> GpuRates:
    return state.profile.workload.rates_at(device.index, state.workload_time())


def _memory(state: FakeState, device: FakeDevice) -> tuple[int, int, int]:
    """(total, reserved, used) in bytes; used excludes the reserved part."""
    total, reserved = device.memory_bytes, device.reserved_bytes
    used = int(_rates(state, device).memory_used_ratio * (total - reserved))
    return total, reserved, used


def _name(state: FakeState, device: FakeDevice, buffer: object, length: object) -> int:
    return write_text(buffer, length, device.name)


def _uuid(state: FakeState, device: FakeDevice, buffer: object, length: object) -> int:
    return write_text(buffer, length, device.uuid)


def _pci_info(state: FakeState, device: FakeDevice, out: object) -> int:
    info = deref(out)
    info.busIdLegacy = f"0000:{device.pci_bus:02X}:00.0"
    info.busId = f"00000000:{device.pci_bus:02X}:00.0"
    info.domain = 0
    info.bus = device.pci_bus
    info.device = 0
    info.pciDeviceId = device.spec.pci_device_id
    info.pciSubSystemId = device.spec.pci_subsystem_id
    return codes.SUCCESS


def _memory_v1(state: FakeState, device: FakeDevice, out: object) -> int:
    total, reserved, used = _memory(state, device)
    memory = deref(out)
    memory.total = total
    memory.free = total - reserved - used
    memory.used = reserved + used
    return codes.SUCCESS


def _memory_v2(state: FakeState, device: FakeDevice, out: object) -> int:
    memory = deref(out)
    if memory.version != pynvml.nvmlMemory_v2:
        return codes.ARGUMENT_VERSION_MISMATCH
    total, reserved, used = _memory(state, device)
    memory.total = total
    memory.reserved = reserved
    memory.used = used
    memory.free = total - reserved - used
    return codes.SUCCESS


def _utilization(state: FakeState, device: FakeDevice, out: object) -> int:
    rates = _rates(state, device)
    utilization = deref(out)
    utilization.gpu = round(rates.utilization_gpu * 100)
    utilization.memory = round(rates.utilization_memory * 100)
    return codes.SUCCESS


def _clock(state: FakeState, device: FakeDevice, clock_type: object, out: object) -> int:
    maximum = device.spec.max_clocks_mhz.get(as_int(clock_type))
    if maximum is None:
        return codes.INVALID_ARGUMENT
    if as_int(clock_type) != pynvml.NVML_CLOCK_MEM:
        maximum = round(maximum * _rates(state, device).sm_clock_ratio)
    deref(out).value = maximum
    return codes.SUCCESS


def _max_clock(state: FakeState, device: FakeDevice, clock_type: object, out: object) -> int:
    maximum = device.spec.max_clocks_mhz.get(as_int(clock_type))
    if maximum is None:
        return codes.INVALID_ARGUMENT
    deref(out).value = maximum
    return codes.SUCCESS


def _reasons(state: FakeState, device: FakeDevice, out: object) -> int:
    mask = 0
    for reason in _rates(state, device).clock_event_reasons:
        mask |= REASON_BITS.get(reason, 0)
    deref(out).value = mask
    return codes.SUCCESS


def _temperature(state: FakeState, device: FakeDevice, sensor: object, out: object) -> int:
    if as_int(sensor) != pynvml.NVML_TEMPERATURE_GPU:
        return codes.INVALID_ARGUMENT
    deref(out).value = int(_rates(state, device).gpu_temperature_celsius)
    return codes.SUCCESS


def _power_usage(state: FakeState, device: FakeDevice, out: object) -> int:
    deref(out).value = int(_rates(state, device).power_watts * 1000)
    return codes.SUCCESS


def _power_limit(state: FakeState, device: FakeDevice, out: object) -> int:
    deref(out).value = int(device.spec.power_limit_watts * 1000)
    return codes.SUCCESS


def _energy(state: FakeState, device: FakeDevice, out: object) -> int:
    result = read_field(state, device, pynvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION, 0)
    if result.nvml_return != codes.SUCCESS:
        return result.nvml_return
    deref(out).value = result.value
    return codes.SUCCESS


_VALUE_MEMBER = {
    pynvml.NVML_VALUE_TYPE_DOUBLE: "dVal",
    pynvml.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
    pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
    pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
    pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
    pynvml.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
}


def _field_values(state: FakeState, device: FakeDevice, count: object, values: object) -> int:
    """Fill each requested field; SUCCESS when any was filled (check each nvmlReturn)."""
    n = as_int(count)
    array = deref(values)
    if n <= 0 or n > len(array):
        return codes.INVALID_ARGUMENT
    now = state.now()
    timestamp, t = int(now * 1_000_000), state.workload_time(now)
    filled = 0
    for i in range(n):
        entry = array[i]
        result = read_field(state, device, int(entry.fieldId), int(entry.scopeId), t)
        entry.timestamp = timestamp
        entry.latencyUsec = 0
        entry.nvmlReturn = result.nvml_return
        entry.valueType = result.value_type
        if result.nvml_return == codes.SUCCESS:
            setattr(entry.value, _VALUE_MEMBER[result.value_type], result.value)
            filled += 1
    return codes.SUCCESS if filled else codes.NOT_SUPPORTED


def _processes(state: FakeState, device: FakeDevice, count: object, infos: object) -> int:
    """nvmlDeviceGetComputeRunningProcesses_v3: size query with NULL, then fill."""
    processes = state.processes_on(device)
    counter = deref(count)
    if not processes:
        counter.value = 0
        return codes.SUCCESS
    if infos is None or counter.value < len(processes):
        counter.value = len(processes)
        return codes.INSUFFICIENT_SIZE
    array = deref(infos)
    for i, (pid, used) in enumerate(processes):
        array[i].pid = pid
        array[i].usedGpuMemory = used
        array[i].gpuInstanceId = device.mig_index if device.mig_index is not None else _NO_INSTANCE
        array[i].computeInstanceId = 0 if device.is_mig else _NO_INSTANCE
    counter.value = len(processes)
    return codes.SUCCESS


def _device(name: str, impl: Callable[..., int], *, mig: bool = False) -> ApiFunction:
    return ApiFunction(name, impl, device_arg=True, mig_ok=mig)


FUNCTIONS = (
    _device("nvmlDeviceGetName", _name, mig=True),
    _device("nvmlDeviceGetUUID", _uuid, mig=True),
    _device("nvmlDeviceGetPciInfo_v3", _pci_info, mig=True),
    _device("nvmlDeviceGetMemoryInfo", _memory_v1, mig=True),
    _device("nvmlDeviceGetMemoryInfo_v2", _memory_v2, mig=True),
    _device("nvmlDeviceGetUtilizationRates", _utilization),
    _device("nvmlDeviceGetClockInfo", _clock),
    _device("nvmlDeviceGetMaxClockInfo", _max_clock),
    _device("nvmlDeviceGetCurrentClocksEventReasons", _reasons),
    _device("nvmlDeviceGetCurrentClocksThrottleReasons", _reasons),
    _device("nvmlDeviceGetTemperature", _temperature),
    _device("nvmlDeviceGetPowerUsage", _power_usage),
    _device("nvmlDeviceGetEnforcedPowerLimit", _power_limit),
    _device("nvmlDeviceGetTotalEnergyConsumption", _energy),
    _device("nvmlDeviceGetFieldValues", _field_values),
    _device("nvmlDeviceGetComputeRunningProcesses_v3", _processes, mig=True),
)
