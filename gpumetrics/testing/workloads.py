"""Named FakeNvml workloads for the demo mode (`gpumetrics serve --fake-workload NAME`), and
workloads replayed from a recorded trace's phases file.

`default` cycles idle, prefill, decode and all-reduce phases (so dashboards move); `steady` is
one constant decode-with-all-reduce phase whose rates integration tests check end to end;
`h200` replays what a real H200 did (idle, bf16 matmul, device copy, a storm of tiny kernels;
`fakenvml/h200.py`) with the timing of the recorded trace.

A phases file (the replay-fixture format, tests/data/h200/README.md) has one line per phase
change, `<epoch seconds> <phase> [key=value ...]`: each line starts a stretch that lasts until
the next line, and the last line (conventionally `end`) closes the trace. A stretch named
`<phase>_end` is the settling after `<phase>`'s loop: the process still holds its CUDA
context but runs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from types import MappingProxyType

from ..units import GIB, MIB
from .fakenvml import DEFAULT_WORKLOAD, GpuRates, Phase, Workload
from .fakenvml.h200 import H200_PHASES

__all__ = [
    "H200",
    "STEADY",
    "STEADY_RATES",
    "WORKLOADS",
    "PhaseMark",
    "Stretch",
    "parse_phase_marks",
    "stretches",
    "workload_from_marks",
]

#: Memory-bound decode with tensor-parallel all-reduce traffic: DRAM busy, tensor cores not.
STEADY_RATES = GpuRates(
    power_watts=540.0,
    sm_active=0.85,
    sm_occupancy=0.30,
    tensor_active=0.22,
    dram_active=0.81,
    fp32_active=0.06,
    fp16_active=0.04,
    integer_active=0.10,
    nvlink_tx_bytes_per_second=10 * GIB,
    nvlink_rx_bytes_per_second=8 * GIB,
    pcie_tx_bytes_per_second=64 * MIB,
    pcie_rx_bytes_per_second=32 * MIB,
    utilization_gpu=1.0,
    utilization_memory=0.62,
    gpu_temperature_celsius=61.0,
    memory_temperature_celsius=70.0,
)

STEADY = Workload((Phase("steady-decode", 3600.0, STEADY_RATES),))


@dataclass(frozen=True, slots=True)
class PhaseMark:
    """One line of a phases file: at `epoch` (Unix seconds) phase `name` begins; `params`
    are its `key=value` notes (e.g. `tflops=654.2`)."""

    epoch: float
    name: str
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Stretch:
    """A phase with its extent: [start, end) in Unix seconds."""

    name: str
    start: float
    end: float


def parse_phase_marks(text: str) -> tuple[PhaseMark, ...]:
    """The marks of a phases file, in order. Blank lines and `#` comments are skipped;
    ValueError (naming the line) for a malformed line or a time going backwards."""
    marks: list[PhaseMark] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        try:
            epoch = float(fields[0])
        except ValueError:
            raise ValueError(f"phases line {number}: {fields[0]!r} is not epoch seconds") from None
        if len(fields) < 2:
            raise ValueError(f"phases line {number}: no phase name after {fields[0]}")
        params = []
        for field in fields[2:]:
            key, sep, value = field.partition("=")
            if not sep or not key:
                raise ValueError(f"phases line {number}: {field!r} is not key=value")
            params.append((key, value))
        if marks and epoch < marks[-1].epoch:
            raise ValueError(f"phases line {number}: time goes backwards")
        marks.append(PhaseMark(epoch, fields[1], tuple(params)))
    if len(marks) < 2:
        raise ValueError("a phases file needs at least two lines (a phase and its end)")
    return tuple(marks)


def stretches(marks: tuple[PhaseMark, ...]) -> tuple[Stretch, ...]:
    """Each mark until the next one; empty stretches dropped, the last mark only closes."""
    return tuple(
        Stretch(mark.name, mark.epoch, after.epoch)
        for mark, after in pairwise(marks)
        if after.epoch > mark.epoch
    )


def _rates_for(name: str, rates: Mapping[str, GpuRates]) -> GpuRates:
    if name in rates:
        return rates[name]
    if name.endswith("_end") and "warm_idle" in rates:
        return rates["warm_idle"]
    known = ", ".join(sorted(rates))
    raise ValueError(f"no rates for phase {name!r} (known: {known}, and <phase>_end)")


def workload_from_marks(
    marks: tuple[PhaseMark, ...], rates: Mapping[str, GpuRates] = H200_PHASES
) -> Workload:
    """A workload playing the marks' stretches with `rates` per phase name (`<phase>_end`:
    `warm_idle`). Its time 0 is the first mark: give FakeNvml `epoch=marks[0].epoch` to line
    it up with the recording. ValueError names a phase `rates` does not have."""
    return Workload(
        tuple(
            Phase(stretch.name, stretch.end - stretch.start, _rates_for(stretch.name, rates))
            for stretch in stretches(marks)
        )
    )


#: The real H200 trace's timeline (tests/data/h200/trace-phases.txt, relative seconds): 8.4 s
#: idle, 15 s matmul, 8 s settling, 15 s copy, 5 s settling, 12 s tiny kernels, 6 s settling.
_H200_TIMELINE = (
    (0.0, "idle"),
    (8.40, "gemm"),
    (23.41, "gemm_end"),
    (31.41, "copy"),
    (46.42, "copy_end"),
    (51.45, "tiny_kernels"),
    (63.45, "tiny_end"),
    (69.45, "end"),
)
H200 = workload_from_marks(tuple(PhaseMark(at, name) for at, name in _H200_TIMELINE))

WORKLOADS: Mapping[str, Workload] = MappingProxyType(
    {"default": DEFAULT_WORKLOAD, "steady": STEADY, "h200": H200}
)
