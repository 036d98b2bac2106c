"""A deterministic workload script: phases with per-GPU rates, integrated exactly over time.

Every number a fake GPU reports comes from here. Gauges (power, ratios, clocks) are the value
of the phase active at the clock time; cumulative counters (energy, NVLink and PCIe bytes,
throttle time) are the exact integral of the phase rates from the workload's start, so a test
can compute an expected rate by hand: two reads at `t1` and `t2` inside one phase differ by
`rate x (t2 - t1)`. The script loops forever.

Counters reach NVML as integers (mJ, KiB, bytes, ns), floored; pick rates and times whose
integrals are whole numbers in those units (whole watts and seconds, byte rates that are
multiples of 1 KiB) and rates computed from them are exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ...units import GIB, MIB

__all__ = [
    "DEFAULT_WORKLOAD",
    "GpuRates",
    "Phase",
    "Workload",
]


@dataclass(frozen=True, slots=True)
class GpuRates:
    """What one GPU does during a phase: levels, ratios in 0..1, rates per second.

    NVLink rates are per link and direction, payload only; raw bytes (protocol overhead
    included) are `data x (1 + nvlink_raw_overhead)`. `clock_event_reasons` name the active
    clock event (throttle) reasons, e.g. ("gpu_idle",) or ("sw_power_cap",); each one also
    accrues its throttle-time counter at one second per second.
    """

    power_watts: float
    sm_active: float = 0.0
    sm_occupancy: float = 0.0
    tensor_active: float = 0.0
    dram_active: float = 0.0
    fp64_active: float = 0.0
    fp32_active: float = 0.0
    fp16_active: float = 0.0
    integer_active: float = 0.0
    nvlink_tx_bytes_per_second: float = 0.0
    nvlink_rx_bytes_per_second: float = 0.0
    nvlink_raw_overhead: float = 0.0625
    pcie_tx_bytes_per_second: float = 0.0
    pcie_rx_bytes_per_second: float = 0.0
    utilization_gpu: float = 0.0
    utilization_memory: float = 0.0
    memory_used_ratio: float = 0.9
    sm_clock_ratio: float = 1.0
    gpu_temperature_celsius: float = 40.0
    memory_temperature_celsius: float = 45.0
    clock_event_reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Phase:
    """One step of the script: `duration_seconds` long, `rates` on every GPU unless
    `per_gpu` names other rates for some GPU indices."""

    name: str
    duration_seconds: float
    rates: GpuRates
    per_gpu: tuple[tuple[int, GpuRates], ...] = ()

    def __post_init__(self) -> None:
        if not self.duration_seconds > 0:
            raise ValueError(f"phase {self.name!r}: duration must be > 0")

    def rates_for(self, gpu: int) -> GpuRates:
        """The rates GPU `gpu` runs at in this phase."""
        for index, rates in self.per_gpu:
            if index == gpu:
                return rates
        return self.rates


@dataclass(frozen=True, slots=True)
class Workload:
    """Phases played in order from time 0 (seconds since the fake's epoch), looping."""

    phases: tuple[Phase, ...]
    _cycle: float = field(init=False, repr=False, compare=False, default=0.0)

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValueError("a workload needs at least one phase")
        object.__setattr__(self, "_cycle", math.fsum(p.duration_seconds for p in self.phases))

    @property
    def cycle_seconds(self) -> float:
        """Length of one pass through all phases."""
        return self._cycle

    def phase_at(self, t: float) -> Phase:
        """The phase running at `t` seconds (before 0: the first phase)."""
        offset = max(t, 0.0) % self.cycle_seconds
        for phase in self.phases:
            if offset < phase.duration_seconds:
                return phase
            offset -= phase.duration_seconds
        return self.phases[-1]

    def rates_at(self, gpu: int, t: float) -> GpuRates:
        """GPU `gpu`'s rates at `t` seconds."""
        return self.phase_at(t).rates_for(gpu)

    def integral(self, gpu: int, t: float, value: Callable[[GpuRates], float]) -> float:
        """∫₀ᵗ value(rates) dt for GPU `gpu` (0 for t <= 0): a counter's total at `t`."""
        if t <= 0:
            return 0.0
        cycle = self.cycle_seconds
        whole, rest = divmod(t, cycle)
        total = 0.0
        if whole:
            per_cycle = sum(value(p.rates_for(gpu)) * p.duration_seconds for p in self.phases)
            total += whole * per_cycle
        for phase in self.phases:
            if rest <= 0:
                break
            span = min(rest, phase.duration_seconds)
            total += value(phase.rates_for(gpu)) * span
            rest -= span
        return total

    def average(self, gpu: int, t1: float, t2: float, value: Callable[[GpuRates], float]) -> float:
        """Time-average of value(rates) over [t1, t2]; the phase's value when both lie in it."""
        if t2 <= t1:
            raise ValueError("average needs t2 > t1")
        first = self.phase_at(t1)
        if first is self.phase_at(t2) and self._same_occurrence(t1, t2):
            return value(first.rates_for(gpu))
        return (self.integral(gpu, t2, value) - self.integral(gpu, t1, value)) / (t2 - t1)

    def _same_occurrence(self, t1: float, t2: float) -> bool:
        """True when [t1, t2] lies inside one run of one phase (no phase boundary inside)."""
        cycle = self.cycle_seconds
        if t2 - t1 >= cycle or max(t1, 0.0) // cycle != max(t2, 0.0) // cycle:
            return False
        offset, end = max(t1, 0.0) % cycle, max(t2, 0.0) % cycle
        start = 0.0
        for phase in self.phases:
            stop = start + phase.duration_seconds
            if start <= offset < stop:
                return end < stop
            start = stop
        return False


def _idle() -> GpuRates:
    return GpuRates(
        power_watts=90.0,
        sm_active=0.0,
        pcie_tx_bytes_per_second=1 * MIB,
        pcie_rx_bytes_per_second=1 * MIB,
        memory_used_ratio=0.9,
        sm_clock_ratio=0.175,
        gpu_temperature_celsius=33.0,
        memory_temperature_celsius=38.0,
        clock_event_reasons=("gpu_idle",),
    )


#: The demo script (`--fake-gpus`): a 70 s loop of an LLM server under tensor parallelism.
#: Prefill is compute-bound (tensor high, DRAM mid) and hits the power cap; decode is
#: memory-bound (DRAM high, tensor low) while naive utilization still reads 100%; allreduce
#: moves NVLink traffic. NVLink rates are per link and direction.
DEFAULT_WORKLOAD = Workload(
    (
        Phase("idle", 10.0, _idle()),
        Phase(
            "prefill",
            20.0,
            GpuRates(
                power_watts=620.0,
                sm_active=0.92,
                sm_occupancy=0.45,
                tensor_active=0.78,
                dram_active=0.45,
                fp32_active=0.10,
                fp16_active=0.05,
                integer_active=0.12,
                nvlink_tx_bytes_per_second=2 * GIB,
                nvlink_rx_bytes_per_second=2 * GIB,
                pcie_tx_bytes_per_second=16 * MIB,
                pcie_rx_bytes_per_second=512 * MIB,
                utilization_gpu=1.0,
                utilization_memory=0.45,
                sm_clock_ratio=0.9,
                gpu_temperature_celsius=68.0,
                memory_temperature_celsius=72.0,
                clock_event_reasons=("sw_power_cap",),
            ),
        ),
        Phase(
            "decode",
            30.0,
            GpuRates(
                power_watts=450.0,
                sm_active=0.65,
                sm_occupancy=0.25,
                tensor_active=0.18,
                dram_active=0.82,
                fp32_active=0.08,
                fp16_active=0.04,
                integer_active=0.10,
                nvlink_tx_bytes_per_second=1 * GIB,
                nvlink_rx_bytes_per_second=1 * GIB,
                pcie_tx_bytes_per_second=8 * MIB,
                pcie_rx_bytes_per_second=64 * MIB,
                utilization_gpu=1.0,
                utilization_memory=0.80,
                gpu_temperature_celsius=61.0,
                memory_temperature_celsius=70.0,
            ),
        ),
        Phase(
            "allreduce",
            10.0,
            GpuRates(
                power_watts=380.0,
                sm_active=0.35,
                sm_occupancy=0.15,
                tensor_active=0.05,
                dram_active=0.30,
                fp32_active=0.12,
                integer_active=0.05,
                nvlink_tx_bytes_per_second=20 * GIB,
                nvlink_rx_bytes_per_second=20 * GIB,
                pcie_tx_bytes_per_second=4 * MIB,
                pcie_rx_bytes_per_second=4 * MIB,
                utilization_gpu=1.0,
                utilization_memory=0.30,
                gpu_temperature_celsius=58.0,
                memory_temperature_celsius=64.0,
            ),
        ),
    )
)
