"""Field values (`nvmlDeviceGetFieldValues`) of a fake GPU, computed from the workload.

Units are NVML's: power mW, energy mJ, NVLink KiB, PCIe bytes, throttle time ns, NVLink speed
MBps (10^6 bytes/s), temperatures °C. Per-link fields take the link in `scopeId`; NVLink
throughput with scopeId UINT_MAX is the sum over links.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import pynvml

from ...sources.nvml_names import R580_FIELD_IDS
from . import codes
from .state import FakeDevice, FakeState
from .workload import GpuRates

__all__ = ["ALL_LINKS", "FieldResult", "read_field"]

#: scopeId meaning "every link" for NVLink throughput fields.
ALL_LINKS = 0xFFFFFFFF

_UINT = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
_ULL = pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG


@dataclass(frozen=True, slots=True)
class FieldResult:
    """One filled `nvmlFieldValue_t`: its return code, value type and value."""

    nvml_return: int
    value_type: int = _ULL
    value: int = 0


_NOT_SUPPORTED = FieldResult(codes.NOT_SUPPORTED)
_INVALID = FieldResult(codes.INVALID_ARGUMENT)

#: The fake is an R580 driver: its field ids are nvml.h's, whatever this pynvml calls them
#: (older releases lack the three newer throttle-time fields or number them 251-253).
_R580, _EVENT = R580_FIELD_IDS, "NVML_FI_DEV_CLOCKS_EVENT_REASON_"
#: nvml.h's NVML_NVLINK_STATE_ACTIVE (pynvml before 12.570 does not name it).
NVLINK_STATE_ACTIVE = 1

#: Throttle-time field -> the clock event reasons whose time it counts.
THROTTLE_FIELDS = MappingProxyType(
    {
        pynvml.NVML_FI_DEV_PERF_POLICY_POWER: ("sw_power_cap",),
        pynvml.NVML_FI_DEV_PERF_POLICY_THERMAL: ("sw_thermal_slowdown", "hw_thermal_slowdown"),
        pynvml.NVML_FI_DEV_PERF_POLICY_SYNC_BOOST: ("sync_boost",),
        pynvml.NVML_FI_DEV_PERF_POLICY_BOARD_LIMIT: ("board_limit",),
        pynvml.NVML_FI_DEV_PERF_POLICY_LOW_UTILIZATION: ("gpu_idle",),
        pynvml.NVML_FI_DEV_PERF_POLICY_RELIABILITY: ("reliability",),
        _R580[_EVENT + "SW_THERM_SLOWDOWN"]: ("sw_thermal_slowdown",),
        _R580[_EVENT + "HW_THERM_SLOWDOWN"]: ("hw_thermal_slowdown",),
        _R580[_EVENT + "HW_POWER_BRAKE_SLOWDOWN"]: ("hw_power_brake_slowdown",),
    }
)

#: Error counters that stay at zero unless a test sets them (set_field).
_ZERO_COUNTERS = frozenset(
    {
        pynvml.NVML_FI_DEV_ECC_SBE_VOL_TOTAL,
        pynvml.NVML_FI_DEV_ECC_DBE_VOL_TOTAL,
        pynvml.NVML_FI_DEV_ECC_SBE_AGG_TOTAL,
        pynvml.NVML_FI_DEV_ECC_DBE_AGG_TOTAL,
        pynvml.NVML_FI_DEV_PCIE_REPLAY_COUNTER,
        pynvml.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL,
        pynvml.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL,
        pynvml.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL,
        pynvml.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL,
        pynvml.NVML_FI_DEV_NVLINK_ECC_DATA_ERROR_COUNT_TOTAL,
    }
)
_ZERO_GAUGES = frozenset(
    {
        pynvml.NVML_FI_DEV_REMAPPED_COR,
        pynvml.NVML_FI_DEV_REMAPPED_UNC,
        pynvml.NVML_FI_DEV_REMAPPED_PENDING,
        pynvml.NVML_FI_DEV_REMAPPED_FAILURE,
    }
)
_PER_LINK_ERRORS = frozenset(
    {
        pynvml.NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY,
        pynvml.NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY,
        pynvml.NVML_FI_DEV_NVLINK_ERROR_DL_CRC,
    }
)


_SCOPED = frozenset(
    {
        *_PER_LINK_ERRORS,
        pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX,
        pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX,
        pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_RAW_TX,
        pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_RAW_RX,
        pynvml.NVML_FI_DEV_NVLINK_GET_SPEED,
        pynvml.NVML_FI_DEV_NVLINK_GET_STATE,
    }
)


def _nvlink_tx(r: GpuRates) -> float:
    return r.nvlink_tx_bytes_per_second


def _nvlink_rx(r: GpuRates) -> float:
    return r.nvlink_rx_bytes_per_second


def _nvlink_raw_tx(r: GpuRates) -> float:
    return r.nvlink_tx_bytes_per_second * (1 + r.nvlink_raw_overhead)


def _nvlink_raw_rx(r: GpuRates) -> float:
    return r.nvlink_rx_bytes_per_second * (1 + r.nvlink_raw_overhead)


_NVLINK_THROUGHPUT: dict[int, Callable[[GpuRates], float]] = {
    pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX: _nvlink_tx,
    pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX: _nvlink_rx,
    pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_RAW_TX: _nvlink_raw_tx,
    pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_RAW_RX: _nvlink_raw_rx,
}


def _reason_time(reasons: tuple[str, ...]) -> Callable[[GpuRates], float]:
    def active(r: GpuRates) -> float:
        return 1.0 if any(reason in r.clock_event_reasons for reason in reasons) else 0.0

    return active


def _floor(value: float) -> int:
    return max(math.floor(value + 1e-9), 0)


def read_field(
    state: FakeState, device: FakeDevice, field_id: int, scope: int, t: float | None = None
) -> FieldResult:
    """The value of one field on `device` at workload time `t` (default: the clock's now)."""
    if not state.field_supported(device, field_id):
        return _NOT_SUPPORTED
    links = device.spec.nvlink_links
    scoped = field_id in _SCOPED
    if scoped and links == 0:
        return _NOT_SUPPORTED
    if scoped and scope >= links and not (field_id in _NVLINK_THROUGHPUT and scope == ALL_LINKS):
        return _INVALID
    override = state.field_overrides.get((device.index, field_id, scope if scoped else None))
    when = state.workload_time() if t is None else t
    result = _compute(state, device, field_id, scope, links, when)
    if override is not None:
        value_type = result.value_type if result is not None else _ULL
        return FieldResult(codes.SUCCESS, value_type, int(override))
    return result if result is not None else _NOT_SUPPORTED


def _compute(
    state: FakeState, device: FakeDevice, field_id: int, scope: int, links: int, t: float
) -> FieldResult | None:
    workload = state.profile.workload
    gpu = device.index

    def counter(value: Callable[[GpuRates], float], scale: float) -> FieldResult:
        total = workload.integral(gpu, t, value) * scale
        return FieldResult(codes.SUCCESS, _ULL, _floor(total))

    def gauge(value: float, value_type: int = _UINT) -> FieldResult:
        return FieldResult(codes.SUCCESS, value_type, _floor(value))

    if field_id in _ZERO_COUNTERS or field_id in _PER_LINK_ERRORS:
        return FieldResult(codes.SUCCESS, _ULL, 0)
    if field_id in _ZERO_GAUGES:
        return gauge(0)
    if field_id == pynvml.NVML_FI_DEV_POWER_CURRENT_LIMIT:
        return gauge(device.spec.power_limit_watts * 1000)
    if field_id == pynvml.NVML_FI_DEV_NVLINK_LINK_COUNT:
        return gauge(links)
    if field_id == pynvml.NVML_FI_DEV_NVLINK_GET_SPEED:
        return gauge(device.spec.nvlink_speed_mbps)
    if field_id == pynvml.NVML_FI_DEV_NVLINK_GET_STATE:
        return gauge(NVLINK_STATE_ACTIVE)
    if field_id in _NVLINK_THROUGHPUT:
        per_link = counter(_NVLINK_THROUGHPUT[field_id], 1 / 1024)
        if scope == ALL_LINKS:
            return FieldResult(codes.SUCCESS, _ULL, per_link.value * links)
        return per_link
    if field_id in (pynvml.NVML_FI_DEV_ENERGY, pynvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION):
        return counter(lambda r: r.power_watts, 1000.0)
    if field_id == pynvml.NVML_FI_DEV_PCIE_COUNT_TX_BYTES:
        return counter(lambda r: r.pcie_tx_bytes_per_second, 1.0)
    if field_id == pynvml.NVML_FI_DEV_PCIE_COUNT_RX_BYTES:
        return counter(lambda r: r.pcie_rx_bytes_per_second, 1.0)
    if field_id in THROTTLE_FIELDS:
        return counter(_reason_time(THROTTLE_FIELDS[field_id]), 1e9)
    rates = workload.rates_at(gpu, t)
    if field_id in (pynvml.NVML_FI_DEV_POWER_INSTANT, pynvml.NVML_FI_DEV_POWER_AVERAGE):
        return gauge(rates.power_watts * 1000)
    if field_id == pynvml.NVML_FI_DEV_MEMORY_TEMP:
        return gauge(rates.memory_temperature_celsius)
    return None
