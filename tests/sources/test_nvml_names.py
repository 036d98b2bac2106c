"""The pynvml name resolver on made-up pynvml modules: old spellings, new spellings, neither,
and field ids numbered the way 12.575-13.580 numbered them."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gpumetrics.sources import nvml_doctor
from gpumetrics.sources.nvml_names import (
    CLOCK_EVENT_REASONS,
    NAMES,
    NvmlNames,
    clock_event_reason_readers,
    clock_event_reasons,
    pynvml_version,
    throttle_time_fields,
)

#: nvml.h's bits, by label (what every spelling must resolve to).
BITS = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
    "board_limit": 0x200,
    "reliability": 0x400,
}
SUFFIX = {
    "gpu_idle": "GpuIdle",
    "applications_clocks_setting": "ApplicationsClocksSetting",
    "sw_power_cap": "SwPowerCap",
    "hw_slowdown": "HwSlowdown",
    "sync_boost": "SyncBoost",
    "sw_thermal_slowdown": "SwThermalSlowdown",
    "hw_thermal_slowdown": "HwThermalSlowdown",
    "hw_power_brake_slowdown": "HwPowerBrakeSlowdown",
    "display_clock_setting": "DisplayClockSetting",
    "board_limit": "BoardLimit",
    "reliability": "Reliability",
}


def _module(prefix: str, labels: list[str], **extra: Any) -> SimpleNamespace:
    attributes = {f"{prefix}{SUFFIX[label]}": BITS[label] for label in labels}
    return SimpleNamespace(**attributes, **extra)


def test_only_the_new_spelling_resolves_to_the_same_bits() -> None:
    names = NvmlNames(_module("nvmlClocksEventReason", list(BITS)))
    assert dict(clock_event_reasons(names)) == BITS
    assert names.missing == ()


def test_only_the_old_spelling_resolves_to_the_same_bits() -> None:
    names = NvmlNames(_module("nvmlClocksThrottleReason", list(BITS)))
    assert dict(clock_event_reasons(names)) == BITS
    assert names.missing == ()


def test_the_new_spelling_wins_and_a_mix_is_fine() -> None:
    """13.615.71's shape: nine reasons in both spellings, two only in the old one."""
    module = _module("nvmlClocksEventReason", list(BITS)[:9])
    for label in ("board_limit", "reliability"):
        setattr(module, f"nvmlClocksThrottleReason{SUFFIX[label]}", BITS[label])
    module.nvmlClocksThrottleReasonGpuIdle = 0x999  # never consulted: the new name exists
    names = NvmlNames(module)
    assert dict(clock_event_reasons(names)) == BITS


def test_a_reason_with_no_spelling_is_not_supported_and_listed() -> None:
    """13.610.43's shape: no BoardLimit or Reliability in either spelling."""
    names = NvmlNames(_module("nvmlClocksEventReason", list(BITS)[:9]))
    reasons = dict(clock_event_reasons(names))
    assert set(reasons) == set(list(BITS)[:9])
    assert [m.what for m in names.missing] == [
        "clock event reason board_limit",
        "clock event reason reliability",
    ]
    assert names.missing[0].spellings == (
        "nvmlClocksEventReasonBoardLimit",
        "nvmlClocksThrottleReasonBoardLimit",
    )
    assert "nvmlClocksThrottleReasonBoardLimit" in names.missing[0].describe()


def _reader(mask: int) -> Any:
    def read(handle: object) -> int:
        return mask

    return read


def test_reason_readers_in_either_spelling_or_none() -> None:
    new, old = _reader(1), _reader(2)
    both = NvmlNames(
        SimpleNamespace(
            nvmlDeviceGetCurrentClocksEventReasons=new,
            nvmlDeviceGetCurrentClocksThrottleReasons=old,
        )
    )
    assert clock_event_reason_readers(both) == (new, old)
    assert clock_event_reason_readers(
        NvmlNames(SimpleNamespace(nvmlDeviceGetCurrentClocksThrottleReasons=old))
    ) == (old,)
    neither = NvmlNames(SimpleNamespace())
    assert clock_event_reason_readers(neither) == ()
    assert [m.what for m in neither.missing] == ["clock event reasons"]


def _policy_fields(**extra: int) -> SimpleNamespace:
    return SimpleNamespace(
        NVML_FI_DEV_PERF_POLICY_POWER=74,
        NVML_FI_DEV_PERF_POLICY_THERMAL=75,
        NVML_FI_DEV_PERF_POLICY_SYNC_BOOST=76,
        NVML_FI_DEV_PERF_POLICY_BOARD_LIMIT=77,
        NVML_FI_DEV_PERF_POLICY_LOW_UTILIZATION=78,
        NVML_FI_DEV_PERF_POLICY_RELIABILITY=79,
        **extra,
    )


_NEWER = {
    "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN": 269,
    "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN": 270,
    "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN": 271,
}
_ALL_TIMES = [
    (74, "sw_power_cap"),
    (75, "thermal"),
    (76, "sync_boost"),
    (77, "board_limit"),
    (78, "low_utilization"),
    (79, "reliability"),
    (269, "sw_thermal_slowdown"),
    (270, "hw_thermal_slowdown"),
    (271, "hw_power_brake_slowdown"),
]


def test_throttle_time_fields_of_a_current_release() -> None:
    names = NvmlNames(_policy_fields(**_NEWER))
    assert list(throttle_time_fields(names)) == _ALL_TIMES
    assert names.missing == ()


def test_throttle_time_fields_under_their_newer_names_only() -> None:
    module = SimpleNamespace(
        NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP=74,
        NVML_FI_DEV_CLOCKS_EVENT_REASON_SYNC_BOOST=76,
    )
    names = NvmlNames(module)
    assert list(throttle_time_fields(names)) == [(74, "sw_power_cap"), (76, "sync_boost")]
    assert "throttle time thermal" in [m.what for m in names.missing]


def test_fields_missing_before_12_575_are_not_supported() -> None:
    names = NvmlNames(_policy_fields())
    assert list(throttle_time_fields(names)) == _ALL_TIMES[:6]
    assert [m.what for m in names.missing] == [
        "throttle time sw_thermal_slowdown",
        "throttle time hw_thermal_slowdown",
        "throttle time hw_power_brake_slowdown",
    ]


def test_fields_numbered_251_to_253_are_not_trusted() -> None:
    """12.575.51-13.580.65 number these 251-253: power-smoothing fields on a current driver."""
    old = {name: value - 18 for name, value in _NEWER.items()}
    names = NvmlNames(_policy_fields(**old))
    assert list(throttle_time_fields(names)) == _ALL_TIMES[:6]
    notes = [m.note for m in names.missing]
    assert notes == [
        "this nvidia-ml-py numbers it 251; NVML uses 269",
        "this nvidia-ml-py numbers it 252; NVML uses 270",
        "this nvidia-ml-py numbers it 253; NVML uses 271",
    ]


def test_constant_skips_non_ints_and_can_stay_unrecorded() -> None:
    names = NvmlNames(SimpleNamespace(A="text", B=True, C=7))
    assert names.constant("A", "B", "C") == 7
    assert names.constant("D", record=False) is None
    assert names.missing == ()
    assert names.constant("D", what="thing") is None
    assert [m.describe() for m in names.missing] == ["thing (D)"]


def test_the_installed_pynvml_resolves_to_nvml_h_bits() -> None:
    """Whatever release is installed: each reason it names has nvml.h's bit, and each one it
    does not name is listed as missing."""
    resolved = dict(CLOCK_EVENT_REASONS)
    assert resolved == {label: BITS[label] for label in resolved}
    listed = {m.what for m in NAMES.missing}
    assert {f"clock event reason {label}" for label in set(BITS) - set(resolved)} <= listed


def test_pynvml_version_is_the_distribution_beside_the_module(tmp_path: Path) -> None:
    assert pynvml_version() == version("nvidia-ml-py")
    (tmp_path / "pynvml.py").write_text("")
    info = tmp_path / "nvidia_ml_py-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nvidia-ml-py\nVersion: 1.2.3\n")
    assert pynvml_version(SimpleNamespace(__file__=str(tmp_path / "pynvml.py"))) == "1.2.3"
    assert pynvml_version(SimpleNamespace()) == "unknown"


def test_doctor_lists_what_this_release_cannot_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nvml_doctor, "NAMES", NvmlNames(_module("nvmlClocksEventReason", [])))
    assert nvml_doctor._names_check().status == "ok"  # nothing looked up, nothing missing
    names = NvmlNames(_module("nvmlClocksEventReason", list(BITS)[:9]))
    clock_event_reasons(names)
    monkeypatch.setattr(nvml_doctor, "NAMES", names)
    check = nvml_doctor._names_check()
    assert check.status == "warn"
    assert check.area == "node"
    assert "lacks 2" in check.detail
    assert "clock event reason board_limit" in check.detail
    assert "not supported" in check.hint
