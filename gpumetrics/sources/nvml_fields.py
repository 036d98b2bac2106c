"""NVML field-id tables: which field feeds which catalog metric, with which labels and scale.

All of a GPU's fields go out in ONE `nvmlDeviceGetFieldValues` call per sample; per-link
NVLink fields carry the link in `scopeId`. Each field has its own `nvmlReturn`: success gives
a sample, NOT_SUPPORTED gives none. Scales convert NVML units to base units:

| fields            | NVML unit        | x scale  | metric                                      |
|-------------------|------------------|----------|---------------------------------------------|
| 186 / 190         | mW               | 1e-3     | gpu_power_watts / gpu_power_limit_watts     |
| 191               | mJ, cumulative   | 1e-3     | gpu_energy_joules_total                     |
| 82                | °C               | 1        | gpu_temperature_celsius{sensor="memory"}    |
| 197 / 198         | bytes, cumul.    | 1        | gpu_pcie_bytes_total{direction}             |
| 74-79, 269-271    | ns, cumulative   | 1e-9     | gpu_throttle_seconds_total{reason}          |
| 138-141 per link  | KiB, cumulative  | 1024     | gpu_nvlink_{data,raw}_bytes_total           |
| 164 per link      | MBps (10^6 B/s)  | 1e6      | gpu_nvlink_speed_bytes_per_second           |
| 165 per link      | state enum       | active=1 | gpu_nvlink_link_up                          |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pynvml

from ..catalog import MetricSpec
from ..catalog import gpu as g
from ..model import Labels, Sample

__all__ = [
    "CLOCK_EVENT_REASONS",
    "GPU_TEMPERATURE_FIELD",
    "FieldRead",
    "field_reads",
    "field_value",
]

#: GPU core temperature as a field, where this pynvml knows the id; else the source calls
#: nvmlDeviceGetTemperature (nvidia-smi --query-gpu=temperature.gpu).
GPU_TEMPERATURE_FIELD: int | None = getattr(pynvml, "NVML_FI_DEV_TEMPERATURE_CURRENT", None)

#: Clock event (throttle) reasons: label -> bit of nvmlDeviceGetCurrentClocksEventReasons
#: (nvidia-smi -q -d PERFORMANCE). The last two exist only under the older "throttle" name.
CLOCK_EVENT_REASONS: tuple[tuple[str, int], ...] = (
    ("gpu_idle", pynvml.nvmlClocksEventReasonGpuIdle),
    ("applications_clocks_setting", pynvml.nvmlClocksEventReasonApplicationsClocksSetting),
    ("sw_power_cap", pynvml.nvmlClocksEventReasonSwPowerCap),
    ("hw_slowdown", pynvml.nvmlClocksEventReasonHwSlowdown),
    ("sync_boost", pynvml.nvmlClocksEventReasonSyncBoost),
    ("sw_thermal_slowdown", pynvml.nvmlClocksEventReasonSwThermalSlowdown),
    ("hw_thermal_slowdown", pynvml.nvmlClocksEventReasonHwThermalSlowdown),
    ("hw_power_brake_slowdown", pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown),
    ("display_clock_setting", pynvml.nvmlClocksEventReasonDisplayClockSetting),
    ("board_limit", pynvml.nvmlClocksThrottleReasonBoardLimit),
    ("reliability", pynvml.nvmlClocksThrottleReasonReliability),
)


@dataclass(frozen=True, slots=True)
class FieldRead:
    """One entry of the batched field request and the sample its value becomes.

    `scope` is the NVLink link for per-link fields (None otherwise); the sample's value is
    `raw x scale` in the catalog's base unit, or 1/0 for `link_state` (NVLink active or not).
    """

    field_id: int
    scope: int | None
    spec: MetricSpec
    extra_labels: tuple[str, ...] = ()
    scale: float = 1.0
    link_state: bool = False

    @property
    def request(self) -> int | tuple[int, int]:
        """The entry for pynvml.nvmlDeviceGetFieldValues: `fid` or `(fid, scopeId)`."""
        return self.field_id if self.scope is None else (self.field_id, self.scope)

    def sample(self, raw: float, gpu_labels: Labels) -> Sample:
        if self.link_state:
            value = 1.0 if raw == pynvml.NVML_NVLINK_STATE_ACTIVE else 0.0
        else:
            value = raw * self.scale
        return self.spec.sample(value, *gpu_labels, *self.extra_labels)


def _scalar(field_id: int, spec: MetricSpec, *labels: str, scale: float = 1.0) -> FieldRead:
    return FieldRead(field_id, None, spec, labels, scale)


_THROTTLE_TIME = (
    (pynvml.NVML_FI_DEV_PERF_POLICY_POWER, "sw_power_cap"),
    (pynvml.NVML_FI_DEV_PERF_POLICY_THERMAL, "thermal"),
    (pynvml.NVML_FI_DEV_PERF_POLICY_SYNC_BOOST, "sync_boost"),
    (pynvml.NVML_FI_DEV_PERF_POLICY_BOARD_LIMIT, "board_limit"),
    (pynvml.NVML_FI_DEV_PERF_POLICY_LOW_UTILIZATION, "low_utilization"),
    (pynvml.NVML_FI_DEV_PERF_POLICY_RELIABILITY, "reliability"),
    (pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN, "sw_thermal_slowdown"),
    (pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN, "hw_thermal_slowdown"),
    (pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN, "hw_power_brake_slowdown"),
)

_SCALARS: tuple[FieldRead, ...] = (
    _scalar(pynvml.NVML_FI_DEV_POWER_INSTANT, g.GPU_POWER, scale=1e-3),
    _scalar(pynvml.NVML_FI_DEV_POWER_CURRENT_LIMIT, g.GPU_POWER_LIMIT, scale=1e-3),
    _scalar(pynvml.NVML_FI_DEV_ENERGY, g.GPU_ENERGY, scale=1e-3),
    _scalar(pynvml.NVML_FI_DEV_MEMORY_TEMP, g.GPU_TEMPERATURE, "memory"),
    _scalar(pynvml.NVML_FI_DEV_PCIE_COUNT_TX_BYTES, g.GPU_PCIE_BYTES, "tx"),
    _scalar(pynvml.NVML_FI_DEV_PCIE_COUNT_RX_BYTES, g.GPU_PCIE_BYTES, "rx"),
    _scalar(pynvml.NVML_FI_DEV_PCIE_REPLAY_COUNTER, g.GPU_PCIE_REPLAYS),
    *(_scalar(fid, g.GPU_THROTTLE_TIME, reason, scale=1e-9) for fid, reason in _THROTTLE_TIME),
    _scalar(pynvml.NVML_FI_DEV_ECC_SBE_VOL_TOTAL, g.GPU_ECC_ERRORS, "corrected", "volatile"),
    _scalar(pynvml.NVML_FI_DEV_ECC_DBE_VOL_TOTAL, g.GPU_ECC_ERRORS, "uncorrected", "volatile"),
    _scalar(pynvml.NVML_FI_DEV_ECC_SBE_AGG_TOTAL, g.GPU_ECC_ERRORS, "corrected", "aggregate"),
    _scalar(pynvml.NVML_FI_DEV_ECC_DBE_AGG_TOTAL, g.GPU_ECC_ERRORS, "uncorrected", "aggregate"),
    _scalar(pynvml.NVML_FI_DEV_REMAPPED_COR, g.GPU_REMAPPED_ROWS, "correctable"),
    _scalar(pynvml.NVML_FI_DEV_REMAPPED_UNC, g.GPU_REMAPPED_ROWS, "uncorrectable"),
    _scalar(pynvml.NVML_FI_DEV_REMAPPED_PENDING, g.GPU_ROW_REMAP_PENDING),
    _scalar(pynvml.NVML_FI_DEV_REMAPPED_FAILURE, g.GPU_ROW_REMAP_FAILED),
    _scalar(pynvml.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, g.NVLINK_ERRORS, "crc_flit"),
    _scalar(pynvml.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL, g.NVLINK_ERRORS, "crc_data"),
    _scalar(pynvml.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL, g.NVLINK_ERRORS, "replay"),
    _scalar(pynvml.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL, g.NVLINK_ERRORS, "recovery"),
    _scalar(pynvml.NVML_FI_DEV_NVLINK_ECC_DATA_ERROR_COUNT_TOTAL, g.NVLINK_ERRORS, "ecc"),
)


def _per_link(link: int) -> tuple[FieldRead, ...]:
    name = str(link)
    kib = 1024.0
    data, raw, errors = g.NVLINK_DATA_BYTES, g.NVLINK_RAW_BYTES, g.NVLINK_LINK_ERRORS
    return (
        FieldRead(pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, link, data, (name, "tx"), kib),
        FieldRead(pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, link, data, (name, "rx"), kib),
        FieldRead(pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_RAW_TX, link, raw, (name, "tx"), kib),
        FieldRead(pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_RAW_RX, link, raw, (name, "rx"), kib),
        FieldRead(pynvml.NVML_FI_DEV_NVLINK_GET_STATE, link, g.NVLINK_LINK_UP, (name,), 1.0, True),
        FieldRead(pynvml.NVML_FI_DEV_NVLINK_GET_SPEED, link, g.NVLINK_SPEED, (name,), 1e6),
        FieldRead(pynvml.NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY, link, errors, (name, "replay")),
        FieldRead(pynvml.NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY, link, errors, (name, "recovery")),
        FieldRead(pynvml.NVML_FI_DEV_NVLINK_ERROR_DL_CRC, link, errors, (name, "crc")),
    )


def field_reads(links: int) -> tuple[FieldRead, ...]:
    """The whole per-sample field request for a GPU with `links` NVLink links."""
    temperature: tuple[FieldRead, ...] = ()
    if GPU_TEMPERATURE_FIELD is not None:
        temperature = (_scalar(GPU_TEMPERATURE_FIELD, g.GPU_TEMPERATURE, "gpu"),)
    per_link = tuple(read for link in range(links) for read in _per_link(link))
    return (*_SCALARS, *temperature, *per_link)


_MEMBERS = {
    pynvml.NVML_VALUE_TYPE_DOUBLE: "dVal",
    pynvml.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
    pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
    pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
    pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
    pynvml.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
    pynvml.NVML_VALUE_TYPE_UNSIGNED_SHORT: "usVal",
}


def field_value(value: Any) -> float | None:
    """The number in an `nvmlFieldValue_t` per its `valueType` (None for an unknown type)."""
    member = _MEMBERS.get(int(value.valueType))
    return None if member is None else float(getattr(value.value, member))
