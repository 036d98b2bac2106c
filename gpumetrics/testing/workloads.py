"""Named FakeNvml workloads for the demo mode (`gpumetrics serve --fake-workload NAME`).

`default` cycles idle, prefill, decode and all-reduce phases (so dashboards move); `steady` is
one constant decode-with-all-reduce phase whose rates integration tests check end to end.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ..units import GIB, MIB
from .fakenvml import DEFAULT_WORKLOAD, GpuRates, Phase, Workload

__all__ = ["STEADY", "STEADY_RATES", "WORKLOADS"]

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

WORKLOADS: Mapping[str, Workload] = MappingProxyType(
    {"default": DEFAULT_WORKLOAD, "steady": STEADY}
)
