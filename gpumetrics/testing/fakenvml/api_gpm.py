"""Fake NVML: GPM (GPU Performance Monitoring, Hopper and newer).

A sample buffer records which GPU and what clock time nvmlGpmSampleGet read; nvmlGpmMetricsGet
returns the workload's time-average over [sample1, sample2]: ratios in percent, throughputs
in MiB/s. Over a window inside one phase that is exactly the phase's value.

nvmlGpmMigSampleGet(GPU, GPU instance id, buffer) stamps the buffer with that instance's MIG
device: its ratios are the parent GPU's times the instance's `activity` (MigSpec), and its
PCIe/NVLink throughputs read NOT_SUPPORTED (device-wide counters, not per instance).
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

import pynvml

from ...units import MIB
from . import codes
from .registry import ApiFunction
from .state import FakeDevice, FakeState, address_of, as_int, deref, write_address
from .workload import GpuRates

__all__ = ["FUNCTIONS"]


#: GPM metric id -> the workload ratio it reports (NVML reports it x 100).
_PERCENT: MappingProxyType[int, Callable[[GpuRates], float]] = MappingProxyType(
    {
        pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL: lambda r: r.utilization_gpu,
        pynvml.NVML_GPM_METRIC_SM_UTIL: lambda r: r.sm_active,
        pynvml.NVML_GPM_METRIC_SM_OCCUPANCY: lambda r: r.sm_occupancy,
        pynvml.NVML_GPM_METRIC_INTEGER_UTIL: lambda r: r.integer_active,
        pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL: lambda r: r.tensor_active,
        pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL: lambda r: r.dram_active,
        pynvml.NVML_GPM_METRIC_FP64_UTIL: lambda r: r.fp64_active,
        pynvml.NVML_GPM_METRIC_FP32_UTIL: lambda r: r.fp32_active,
        pynvml.NVML_GPM_METRIC_FP16_UTIL: lambda r: r.fp16_active,
    }
)
_PER_LINK_BASE = pynvml.NVML_GPM_METRIC_NVLINK_L0_RX_PER_SEC
_MAX_GPM_LINKS = 18


def _byte_rate(metric_id: int, links: int) -> Callable[[GpuRates], float] | None:
    """Bytes/s the metric reports (before the MiB conversion), or None if not a rate."""
    if metric_id == pynvml.NVML_GPM_METRIC_PCIE_TX_PER_SEC:
        return lambda r: r.pcie_tx_bytes_per_second
    if metric_id == pynvml.NVML_GPM_METRIC_PCIE_RX_PER_SEC:
        return lambda r: r.pcie_rx_bytes_per_second
    if metric_id == pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC:
        return lambda r: r.nvlink_rx_bytes_per_second * links
    if metric_id == pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC:
        return lambda r: r.nvlink_tx_bytes_per_second * links
    offset = metric_id - _PER_LINK_BASE
    if 0 <= offset < 2 * min(links, _MAX_GPM_LINKS):
        if offset % 2 == 0:
            return lambda r: r.nvlink_rx_bytes_per_second
        return lambda r: r.nvlink_tx_bytes_per_second
    return None


def _query_support(state: FakeState, device: FakeDevice, out: object) -> int:
    support = deref(out)
    if support.version != pynvml.NVML_GPM_SUPPORT_VERSION:
        return codes.ARGUMENT_VERSION_MISMATCH
    support.isSupportedDevice = 1 if device.spec.gpm and not device.is_mig else 0
    return codes.SUCCESS


def _sample_alloc(state: FakeState, out: object) -> int:
    write_address(out, state.new_gpm_buffer().address)
    return codes.SUCCESS


def _sample_free(state: FakeState, sample: object) -> int:
    address = address_of(sample)
    if address is None or state.gpm_buffers.pop(address, None) is None:
        return codes.INVALID_ARGUMENT
    return codes.SUCCESS


def _sample_get(state: FakeState, device: FakeDevice, sample: object) -> int:
    if not device.spec.gpm:
        return codes.NOT_SUPPORTED
    address = address_of(sample)
    buffer = state.gpm_buffers.get(address) if address is not None else None
    if buffer is None:
        return codes.INVALID_ARGUMENT
    buffer.device = device
    buffer.taken_at = state.now()
    return codes.SUCCESS


def _mig_sample_get(state: FakeState, device: FakeDevice, gi: object, sample: object) -> int:
    if not device.spec.gpm:
        return codes.NOT_SUPPORTED
    if not device.spec.mig:
        return codes.INVALID_ARGUMENT
    child = state.mig_by_instance(device, as_int(gi))
    address = address_of(sample)
    buffer = state.gpm_buffers.get(address) if address is not None else None
    if child is None:
        return codes.NOT_FOUND
    if buffer is None:
        return codes.INVALID_ARGUMENT
    buffer.device = child
    buffer.taken_at = state.now()
    return codes.SUCCESS


def _metrics_get(state: FakeState, out: object) -> int:
    request = deref(out)
    if request.version != pynvml.NVML_GPM_METRICS_GET_VERSION:
        return codes.ARGUMENT_VERSION_MISMATCH
    first = state.gpm_buffers.get(address_of(request.sample1) or 0)
    second = state.gpm_buffers.get(address_of(request.sample2) or 0)
    if first is None or second is None or first.device is None or second.device is None:
        return codes.INVALID_ARGUMENT
    if first.device is not second.device or first.taken_at is None or second.taken_at is None:
        return codes.INVALID_ARGUMENT
    if second.taken_at <= first.taken_at or request.numMetrics > len(request.metrics):
        return codes.INVALID_ARGUMENT
    device = first.device
    if device.index in state.lost:
        return codes.GPU_IS_LOST
    workload = state.profile.workload
    t1, t2 = state.workload_time(first.taken_at), state.workload_time(second.taken_at)
    activity = device.mig.activity if device.mig is not None else 1.0
    for i in range(request.numMetrics):
        metric = request.metrics[i]
        metric_id = int(metric.metricId)
        ratio = _PERCENT.get(metric_id)
        rate = None if device.is_mig else _byte_rate(metric_id, device.spec.nvlink_links)
        if metric_id in state.unsupported_gpm_metrics or (ratio is None and rate is None):
            metric.nvmlReturn = codes.NOT_SUPPORTED
            continue
        if ratio is not None:
            metric.value = workload.average(device.index, t1, t2, ratio) * activity * 100.0
        elif rate is not None:
            metric.value = workload.average(device.index, t1, t2, rate) / MIB
        metric.nvmlReturn = codes.SUCCESS
    return codes.SUCCESS


FUNCTIONS = (
    ApiFunction("nvmlGpmQueryDeviceSupport", _query_support, device_arg=True, mig_ok=True),
    ApiFunction("nvmlGpmSampleAlloc", _sample_alloc),
    ApiFunction("nvmlGpmSampleFree", _sample_free),
    ApiFunction("nvmlGpmSampleGet", _sample_get, device_arg=True),
    ApiFunction("nvmlGpmMetricsGet", _metrics_get),
    ApiFunction("nvmlGpmMigSampleGet", _mig_sample_get, device_arg=True),
)
