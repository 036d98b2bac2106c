"""What a real H200 did, phase by phase, as FakeNvml workload rates.

Every number is the median of `gpumetrics serve --interval 0.25 --process-memory` scrapes on a
real H200 SXM 141GB (driver 580.159.04, 2026-12-04; tests/data/h200/trace.tgz, scraped every
0.5 s), over each phase without its first second:

| phase          | what ran                                | naive | SM     | tensor | DRAM  | W   |
|----------------|-----------------------------------------|-------|--------|--------|-------|-----|
| `idle`         | nothing, no CUDA context: 345 MHz (P8)  | 0     | 0      | 0      | 0     | 78  |
| `gemm`         | bf16 8192³ matmul loop, 654 TFLOP/s     | 0.99  | 0.956  | 0.928  | 0.173 | 688 |
| `copy`         | 4 GiB device copy loop, 4.28 TB/s r+w   | 1.0   | 0.993  | 0      | 0.889 | 474 |
| `tiny_kernels` | 1.17 M tiny kernels in 12 s             | 0.21  | 0.0002 | 0      | 0     | 120 |
| `warm_idle`    | nothing, CUDA context held: 1,980 MHz   | 0     | 0      | 0      | 0     | 121 |

The matmul holds the board at its 700 W limit: power swings 643–738 W, the SM clock is capped
to 1.40–1.52 GHz (median 1,470 MHz) and `sw_power_cap` is the one active clock event reason.
Idle without a context parks the clocks at 345 MHz with `gpu_idle` active; with a context
(after a loop ends) they stay at 1,980 MHz with no reason active. The storm of tiny kernels is
the case naive utilization gets wrong: 0.18–0.26 "utilized" while the SMs were active 0.02 %
of the time.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .workload import GpuRates

__all__ = ["H200_PHASES", "H200_USABLE_BYTES"]

#: Framebuffer bytes outside NVML's reserved part: 150,754,820,096 - 644,939,776.
H200_USABLE_BYTES = 150_109_880_320
_KIB = 1024
_MAX_MHZ = 1980


def _used(bytes_used: int) -> float:
    """memory_used_ratio for `bytes_used` bytes (memory v2 `used`, reserved excluded)."""
    return bytes_used / H200_USABLE_BYTES


def _clock(mhz: int) -> float:
    """sm_clock_ratio for an SM (and graphics) clock of `mhz`."""
    return mhz / _MAX_MHZ


#: Measured rates per phase name, as the trace's phases file names them (`warm_idle` stands
#: for the `<phase>_end` stretches after each loop). PCIe rates are GPM's, in whole KiB/s.
H200_PHASES: Mapping[str, GpuRates] = MappingProxyType(
    {
        "idle": GpuRates(
            power_watts=77.56,
            dram_active=3.75e-6,
            pcie_tx_bytes_per_second=658 * _KIB,
            pcie_rx_bytes_per_second=387 * _KIB,
            memory_used_ratio=0.0,
            sm_clock_ratio=_clock(345),
            gpu_temperature_celsius=34.0,
            memory_temperature_celsius=37.0,
            clock_event_reasons=("gpu_idle",),
        ),
        "gemm": GpuRates(
            power_watts=688.24,
            sm_active=0.9556,
            sm_occupancy=0.1412,
            tensor_active=0.9276,
            dram_active=0.1729,
            integer_active=0.01347,
            pcie_tx_bytes_per_second=5019 * _KIB,
            pcie_rx_bytes_per_second=13514 * _KIB,
            utilization_gpu=0.99,
            utilization_memory=0.24,
            memory_used_ratio=_used(1_194_131_456),
            sm_clock_ratio=_clock(1470),
            gpu_temperature_celsius=55.0,
            memory_temperature_celsius=48.0,
            clock_event_reasons=("sw_power_cap",),
        ),
        "copy": GpuRates(
            power_watts=473.91,
            sm_active=0.9935,
            sm_occupancy=0.8017,
            dram_active=0.8889,
            integer_active=0.08013,
            pcie_tx_bytes_per_second=10474 * _KIB,
            pcie_rx_bytes_per_second=27563 * _KIB,
            utilization_gpu=1.0,
            utilization_memory=1.0,
            memory_used_ratio=_used(9_247_195_136),
            gpu_temperature_celsius=43.0,
            memory_temperature_celsius=56.0,
        ),
        "tiny_kernels": GpuRates(
            power_watts=119.86,
            sm_active=0.0002397,
            sm_occupancy=1.465e-5,
            dram_active=3.81e-6,
            fp32_active=3.09e-6,
            integer_active=8.49e-6,
            pcie_tx_bytes_per_second=20938 * _KIB,
            pcie_rx_bytes_per_second=175889 * _KIB,
            utilization_gpu=0.21,
            memory_used_ratio=_used(753_729_536),
            gpu_temperature_celsius=36.0,
            memory_temperature_celsius=39.0,
        ),
        "warm_idle": GpuRates(
            power_watts=121.0,
            dram_active=3.81e-6,
            pcie_tx_bytes_per_second=786 * _KIB,
            pcie_rx_bytes_per_second=501 * _KIB,
            memory_used_ratio=_used(657_260_544),
            gpu_temperature_celsius=37.0,
            memory_temperature_celsius=40.0,
        ),
    }
)
