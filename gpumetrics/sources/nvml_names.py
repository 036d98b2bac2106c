"""The pynvml names gpumetrics cannot count on, resolved once against the installed
nvidia-ml-py: a name no spelling resolves is "not supported here" (no series, and `gpumetrics
doctor` lists it), never an import error.

nvidia-ml-py is not monotonic in its names. What the releases inspected define (x: defined,
-: absent, else the value):

| name                                         | 12.560 | 12.575–13.580 | 13.590–13.610 | 13.615 |
|----------------------------------------------|--------|---------------|---------------|--------|
| nvmlClocksEventReason* (GpuIdle..Display...) | x      | x             | x             | x      |
| nvmlClocksThrottleReason* (the same nine)    | x      | x             | x             | x      |
| nvmlClocksThrottleReasonBoardLimit, ...      | -      | -             | -             | x      |
|   ...Reliability (no EventReason spelling)   |        |               |               |        |
| NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_... | -      | 251–253       | 269–271       | 269–271|
|   (SW/HW thermal, HW power brake slowdown)   |        |               |               |        |
| NVML_NVLINK_STATE_ACTIVE                     | -      | x             | x             | x      |

The real H200 (driver 580.159.04) answers fields 269–271 as the throttle-time counters; in
the nvml.h that 13.590 and later follow, 251–253 are power-smoothing fields. A release that
numbers them 251–253 is therefore not trusted for those three (`expect`): reading 251 on a
current driver would report power-smoothing state as throttle time.

Every other `pynvml.X` the package names directly exists in all releases from the lower
bound on; tests/sources/test_nvml_compat.py checks that against each pinned release.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pynvml

__all__ = [
    "CLOCK_EVENT_REASONS",
    "CLOCK_EVENT_REASON_READERS",
    "NAMES",
    "R580_FIELD_IDS",
    "Missing",
    "NvmlNames",
    "clock_event_reason_readers",
    "clock_event_reasons",
    "pynvml_version",
    "throttle_time_fields",
]


@dataclass(frozen=True, slots=True)
class Missing:
    """A name this nvidia-ml-py does not provide (in any spelling tried), and so a reading
    gpumetrics does not take: `what` it is for, the `spellings` tried, and a `note`."""

    what: str
    spellings: tuple[str, ...]
    note: str = ""

    def describe(self) -> str:
        """One line: "clock event reason board_limit (nvmlClocksEventReasonBoardLimit or ...)"."""
        tried = " or ".join(self.spellings)
        return f"{self.what} ({tried}{'; ' + self.note if self.note else ''})"


class NvmlNames:
    """Looks names up in one pynvml module (or any object with the same attributes) and
    remembers which readings had no name."""

    __slots__ = ("_missing", "module")

    def __init__(self, module: Any) -> None:
        self.module = module
        self._missing: dict[str, Missing] = {}

    @property
    def missing(self) -> tuple[Missing, ...]:
        """The readings not supported with this module, in lookup order."""
        return tuple(self._missing.values())

    def _note(self, what: str, spellings: tuple[str, ...], note: str = "") -> None:
        self._missing.setdefault(what, Missing(what, spellings, note))

    def constant(
        self, *spellings: str, what: str = "", expect: int | None = None, record: bool = True
    ) -> int | None:
        """The int value of the first spelling the module defines, else None (recorded as
        missing under `what`, default the first spelling, unless `record` is False). With
        `expect`, a value other than it counts as missing too (see the module docstring)."""
        label = what or spellings[0]
        for name in spellings:
            value = getattr(self.module, name, None)
            if isinstance(value, int) and not isinstance(value, bool):
                if expect is not None and value != expect:
                    self._note(
                        label,
                        spellings,
                        f"this nvidia-ml-py numbers it {value}; NVML uses {expect}",
                    )
                    return None
                return value
        if record:
            self._note(label, spellings)
        return None

    def functions(self, *spellings: str, what: str = "") -> tuple[Callable[..., Any], ...]:
        """Every spelling the module defines as a callable, in the order given (empty and
        recorded as missing when none is)."""
        found = tuple(
            function
            for function in (getattr(self.module, name, None) for name in spellings)
            if callable(function)
        )
        if not found:
            self._note(what or spellings[0], spellings)
        return found


#: Clock event (throttle) reason label -> the suffix of its pynvml names, in bit order.
_REASONS = (
    ("gpu_idle", "GpuIdle"),
    ("applications_clocks_setting", "ApplicationsClocksSetting"),
    ("sw_power_cap", "SwPowerCap"),
    ("hw_slowdown", "HwSlowdown"),
    ("sync_boost", "SyncBoost"),
    ("sw_thermal_slowdown", "SwThermalSlowdown"),
    ("hw_thermal_slowdown", "HwThermalSlowdown"),
    ("hw_power_brake_slowdown", "HwPowerBrakeSlowdown"),
    ("display_clock_setting", "DisplayClockSetting"),
    ("board_limit", "BoardLimit"),
    ("reliability", "Reliability"),
)

#: The throttle-time field ids NVML (R580 drivers, nvml.h as of 13.590) gives the three
#: counters that older nvidia-ml-py releases numbered 251-253.
R580_FIELD_IDS = {
    "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN": 269,
    "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN": 270,
    "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN": 271,
}

_EVENT = "NVML_FI_DEV_CLOCKS_EVENT_REASON_"
#: Throttle-time counter label -> its field names (old name first where both exist).
_THROTTLE_TIME = (
    ("sw_power_cap", ("NVML_FI_DEV_PERF_POLICY_POWER", _EVENT + "SW_POWER_CAP")),
    ("thermal", ("NVML_FI_DEV_PERF_POLICY_THERMAL",)),
    ("sync_boost", ("NVML_FI_DEV_PERF_POLICY_SYNC_BOOST", _EVENT + "SYNC_BOOST")),
    ("board_limit", ("NVML_FI_DEV_PERF_POLICY_BOARD_LIMIT",)),
    ("low_utilization", ("NVML_FI_DEV_PERF_POLICY_LOW_UTILIZATION",)),
    ("reliability", ("NVML_FI_DEV_PERF_POLICY_RELIABILITY",)),
    ("sw_thermal_slowdown", (_EVENT + "SW_THERM_SLOWDOWN",)),
    ("hw_thermal_slowdown", (_EVENT + "HW_THERM_SLOWDOWN",)),
    ("hw_power_brake_slowdown", (_EVENT + "HW_POWER_BRAKE_SLOWDOWN",)),
)


def clock_event_reasons(names: NvmlNames) -> tuple[tuple[str, int], ...]:
    """(label, bit of nvmlDeviceGetCurrentClocksEventReasons) for each reason this module
    names in either spelling (nvmlClocksEventReason* first, then nvmlClocksThrottleReason*)."""
    out = []
    for label, suffix in _REASONS:
        bit = names.constant(
            f"nvmlClocksEventReason{suffix}",
            f"nvmlClocksThrottleReason{suffix}",
            what=f"clock event reason {label}",
        )
        if bit is not None:
            out.append((label, bit))
    return tuple(out)


def clock_event_reason_readers(names: NvmlNames) -> tuple[Callable[..., Any], ...]:
    """The functions that read the active reasons mask, newer name first (a driver without
    the newer symbol answers FUNCTION_NOT_FOUND and the source tries the next)."""
    return names.functions(
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlDeviceGetCurrentClocksThrottleReasons",
        what="clock event reasons",
    )


def throttle_time_fields(names: NvmlNames) -> tuple[tuple[int, str], ...]:
    """(field id, label) of each throttle-time counter this module names correctly."""
    out = []
    for label, spellings in _THROTTLE_TIME:
        field = names.constant(
            *spellings, what=f"throttle time {label}", expect=R580_FIELD_IDS.get(spellings[0])
        )
        if field is not None:
            out.append((field, label))
    return tuple(out)


def pynvml_version(module: Any = pynvml) -> str:
    """The nvidia-ml-py version that `module` was installed from ("unknown" if not found):
    the distribution beside the imported file, so a `pip install --target` copy earlier on
    sys.path is reported as itself."""
    where = getattr(module, "__file__", None)
    if where:
        for dist in importlib.metadata.distributions(path=[str(Path(where).parent)]):
            if dist.metadata["Name"] in ("nvidia-ml-py", "nvidia_ml_py"):
                return str(dist.version)
    return "unknown"


#: The installed pynvml's names; the tables below and the source's field reads use it.
NAMES = NvmlNames(pynvml)
CLOCK_EVENT_REASONS = clock_event_reasons(NAMES)
CLOCK_EVENT_REASON_READERS = clock_event_reason_readers(NAMES)
