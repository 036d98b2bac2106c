"""Named workloads and workloads built from a recorded phases file."""

from __future__ import annotations

import pytest

from gpumetrics.testing import GpuRates
from gpumetrics.testing.fakenvml.h200 import H200_PHASES
from gpumetrics.testing.workloads import (
    H200,
    WORKLOADS,
    PhaseMark,
    Stretch,
    parse_phase_marks,
    stretches,
    workload_from_marks,
)

PHASES_FILE = """\
# recorded by hand
100.0 idle
108.5 gemm
120.0 gemm_end tflops=654.2 note=x=y
120.0 idle
120.0 copy
130.0 end
"""


def test_parse_phase_marks() -> None:
    marks = parse_phase_marks(PHASES_FILE)
    assert marks[0] == PhaseMark(100.0, "idle")
    assert marks[2] == PhaseMark(120.0, "gemm_end", (("tflops", "654.2"), ("note", "x=y")))
    assert [m.name for m in marks] == ["idle", "gemm", "gemm_end", "idle", "copy", "end"]


def test_stretches_drop_empty_ones_and_the_last_mark_only_closes() -> None:
    assert stretches(parse_phase_marks(PHASES_FILE)) == (
        Stretch("idle", 100.0, 108.5),
        Stretch("gemm", 108.5, 120.0),
        Stretch("copy", 120.0, 130.0),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x idle\n2 end\n", "line 1: 'x' is not epoch seconds"),
        ("1 idle\n2\n", "line 2: no phase name"),
        ("1 idle k\n2 end\n", "line 1: 'k' is not key=value"),
        ("2 idle\n1 end\n", "line 2: time goes backwards"),
        ("1 idle\n", "at least two lines"),
    ],
)
def test_malformed_phases_files_say_which_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_phase_marks(text)


def test_workload_from_marks_plays_the_rates_with_the_recorded_timing() -> None:
    workload = workload_from_marks(parse_phase_marks(PHASES_FILE))
    assert [(p.name, p.duration_seconds) for p in workload.phases] == [
        ("idle", 8.5),
        ("gemm", 11.5),
        ("copy", 10.0),
    ]
    assert workload.rates_at(0, 9.0) is H200_PHASES["gemm"]
    assert workload.rates_at(0, 25.0) is H200_PHASES["copy"]


def test_end_stretches_are_warm_idle_and_unknown_phases_are_errors() -> None:
    marks = (PhaseMark(0.0, "decode"), PhaseMark(5.0, "decode_end"), PhaseMark(9.0, "end"))
    decode = GpuRates(power_watts=400.0)
    workload = workload_from_marks(marks, {"decode": decode, "warm_idle": H200_PHASES["idle"]})
    assert [p.rates for p in workload.phases] == [decode, H200_PHASES["idle"]]
    with pytest.raises(ValueError, match="no rates for phase 'decode'"):
        workload_from_marks(marks)


def test_the_h200_workload_is_named_for_the_demo() -> None:
    assert WORKLOADS["h200"] is H200
    assert [p.name for p in H200.phases] == [
        "idle", "gemm", "gemm_end", "copy", "copy_end", "tiny_kernels", "tiny_end",
    ]  # fmt: skip
    assert H200.cycle_seconds == pytest.approx(69.45)
    gemm = H200.rates_at(0, 10.0)
    assert (gemm.tensor_active, gemm.dram_active, gemm.clock_event_reasons) == (
        0.9276,
        0.1729,
        ("sw_power_cap",),
    )
    storm = H200.rates_at(0, 55.0)
    assert storm.utilization_gpu / storm.sm_active > 500
