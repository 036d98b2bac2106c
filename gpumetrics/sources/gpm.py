"""GPM (GPU Performance Monitoring, Hopper and newer): the signals that replace naive
utilization: SM active, SM occupancy, tensor active, DRAM active, pipe activity, PCIe and
NVLink throughput (the numbers DCGM's DCGM_FI_PROF_* report; `dcgmi dmon -e 1002,1003,...`).

Part of the NVML source (not a Source of its own): it shares NVML's handles, lost-GPU state
and error list. Per GPU it keeps a two-buffer ring of `nvmlGpmSample_t`: each collect takes a
sample into the older buffer and asks `nvmlGpmMetricsGet` for the metrics between the two, but
only when the newer baseline is at least 0.1 s old (`now` decides; NVML needs >= 100 ms
between samples). A collect that comes sooner takes no sample and keeps the baseline.

Percentages become ratios (/100) and MiB/s become bytes/s (x 1024^2), as DCGM does. Each
metric's own nvmlReturn is checked. The nvmlGpmMetricsGet_t request for each direction of a
ring (sample1 -> sample2, metric ids) is built once and copied per call; the filled metrics
are read with one `struct` unpack rather than pynvml's per-attribute accessors.

nvmlGpmSampleGet answering NO_PERMISSION (locked-down containers) switches GPM off for the
process: one logged warning, one "NVML_ERROR_NO_PERMISSION" error, and the field-value
metrics carry on.

MIG: a ring added with a `gpu_instance` samples that GPU instance of its parent GPU with
`nvmlGpmMigSampleGet(parent, gpu_instance_id, sample)` and asks for the activity metrics only
(graphics, SM, occupancy, tensor, DRAM, pipes: PCIe and NVLink are device-wide), which become
the `gpumetrics_mig_*` families. A pynvml without nvmlGpmMigSampleGet adds no MIG ring (the
name resolver records it for `doctor`); an instance whose sampling answers NOT_SUPPORTED or
FUNCTION_NOT_FOUND is dropped for good with no error, and every other ring carries on.
"""

from __future__ import annotations

import ctypes
import logging
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pynvml

from ..catalog import MetricSpec
from ..catalog import gpu as g
from ..catalog import mig as m
from ..samples import Labels, Sample
from ..units import MIB
from .nvml_lib import GpuLostError, error_name
from .nvml_names import NAMES

__all__ = [
    "GPM_METRICS",
    "MIG_GPM_METRICS",
    "MIG_SAMPLE_GET",
    "MIN_INTERVAL_SECONDS",
    "GpmCollector",
    "GpmMetric",
]

log = logging.getLogger(__name__)

#: NVML needs its two GPM samples at least this far apart.
MIN_INTERVAL_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class GpmMetric:
    """One GPM metric id and the sample it becomes (`value x scale`)."""

    metric_id: int
    spec: MetricSpec
    extra_labels: tuple[str, ...] = ()
    scale: float = 0.01


#: (pynvml name of the metric id, metric, extra labels, scale), in request order.
_METRICS = (
    ("NVML_GPM_METRIC_GRAPHICS_UTIL", g.GPM_GRAPHICS_ACTIVE, (), 0.01),
    ("NVML_GPM_METRIC_SM_UTIL", g.GPM_SM_ACTIVE, (), 0.01),
    ("NVML_GPM_METRIC_SM_OCCUPANCY", g.GPM_SM_OCCUPANCY, (), 0.01),
    ("NVML_GPM_METRIC_ANY_TENSOR_UTIL", g.GPM_TENSOR_ACTIVE, (), 0.01),
    ("NVML_GPM_METRIC_DRAM_BW_UTIL", g.GPM_DRAM_ACTIVE, (), 0.01),
    ("NVML_GPM_METRIC_FP64_UTIL", g.GPM_PIPE_ACTIVE, ("fp64",), 0.01),
    ("NVML_GPM_METRIC_FP32_UTIL", g.GPM_PIPE_ACTIVE, ("fp32",), 0.01),
    ("NVML_GPM_METRIC_FP16_UTIL", g.GPM_PIPE_ACTIVE, ("fp16",), 0.01),
    ("NVML_GPM_METRIC_INTEGER_UTIL", g.GPM_PIPE_ACTIVE, ("integer",), 0.01),
    ("NVML_GPM_METRIC_PCIE_TX_PER_SEC", g.GPM_PCIE_BANDWIDTH, ("tx",), MIB),
    ("NVML_GPM_METRIC_PCIE_RX_PER_SEC", g.GPM_PCIE_BANDWIDTH, ("rx",), MIB),
    ("NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC", g.GPM_NVLINK_BANDWIDTH, ("rx",), MIB),
    ("NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC", g.GPM_NVLINK_BANDWIDTH, ("tx",), MIB),
)

#: The GPM metrics this pynvml names (a metric id it lacks is not requested; doctor lists it).
GPM_METRICS: tuple[GpmMetric, ...] = tuple(
    GpmMetric(metric_id, spec, labels, scale)
    for metric_id, spec, labels, scale in (
        (NAMES.constant(name), spec, labels, scale) for name, spec, labels, scale in _METRICS
    )
    if metric_id is not None
)


#: Per MIG instance: the activity metrics (no PCIe/NVLink: those are device-wide).
_MIG_METRICS = (
    ("NVML_GPM_METRIC_GRAPHICS_UTIL", m.MIG_GRAPHICS_ACTIVE, (), 0.01),
    ("NVML_GPM_METRIC_SM_UTIL", m.MIG_SM_ACTIVE, (), 0.01),
    ("NVML_GPM_METRIC_SM_OCCUPANCY", m.MIG_SM_OCCUPANCY, (), 0.01),
    ("NVML_GPM_METRIC_ANY_TENSOR_UTIL", m.MIG_TENSOR_ACTIVE, (), 0.01),
    ("NVML_GPM_METRIC_DRAM_BW_UTIL", m.MIG_DRAM_ACTIVE, (), 0.01),
    ("NVML_GPM_METRIC_FP64_UTIL", m.MIG_PIPE_ACTIVE, ("fp64",), 0.01),
    ("NVML_GPM_METRIC_FP32_UTIL", m.MIG_PIPE_ACTIVE, ("fp32",), 0.01),
    ("NVML_GPM_METRIC_FP16_UTIL", m.MIG_PIPE_ACTIVE, ("fp16",), 0.01),
    ("NVML_GPM_METRIC_INTEGER_UTIL", m.MIG_PIPE_ACTIVE, ("integer",), 0.01),
)
MIG_GPM_METRICS: tuple[GpmMetric, ...] = tuple(
    GpmMetric(metric_id, spec, labels, scale)
    for metric_id, spec, labels, scale in (
        (NAMES.constant(name), spec, labels, scale) for name, spec, labels, scale in _MIG_METRICS
    )
    if metric_id is not None
)
#: nvmlGpmMigSampleGet where this pynvml has it (empty: no MIG GPM; doctor lists it).
MIG_SAMPLE_GET = NAMES.functions("nvmlGpmMigSampleGet", what="MIG GPM (nvmlGpmMigSampleGet)")
#: Sampling answers that mean "this instance cannot be sampled here": drop it, no error.
_UNSUPPORTED = frozenset({pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND})


_REQUEST = pynvml.c_nvmlGpmMetricsGet_t
_METRIC = pynvml.c_nvmlGpmMetric_t


def _metric_format() -> str:
    """struct format of one nvmlGpmMetric_t read as (metricId, nvmlReturn, value), from the
    offsets ctypes laid out (nvml.h order), skipping metricInfo."""
    members = (
        (_METRIC.metricId.offset, ctypes.sizeof(ctypes.c_uint), "I"),
        (_METRIC.nvmlReturn.offset, ctypes.sizeof(pynvml._nvmlReturn_t), "I"),
        (_METRIC.value.offset, ctypes.sizeof(ctypes.c_double), "d"),
    )
    parts, at = [], 0
    for offset, size, code in members:
        if offset < at or size != struct.calcsize("=" + code):
            raise ImportError("unexpected nvmlGpmMetric_t layout in this pynvml")
        parts.append(f"{offset - at}x{code}")
        at = offset + size
    parts.append(f"{ctypes.sizeof(_METRIC) - at}x")
    return "".join(parts)


_METRIC_FORMAT = _metric_format()
_METRICS_AT: int = _REQUEST.metrics.offset


def metrics_request(first: Any, second: Any, ids: tuple[int, ...]) -> bytes:
    """The bytes of an nvmlGpmMetricsGet_t asking for `ids` between two sample buffers."""
    request = _REQUEST()
    request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics = len(ids)
    request.sample1 = first
    request.sample2 = second
    for i, metric_id in enumerate(ids):
        request.metrics[i].metricId = metric_id
    return bytes(request)


def read_metrics(template: bytes, count: int) -> dict[int, float]:
    """nvmlGpmMetricsGet on a copy of `template` (from `metrics_request`, for `count` ids):
    metric id -> value, for metrics that succeeded."""
    request = _REQUEST.from_buffer_copy(template)
    pynvml.nvmlGpmMetricsGet(request)
    flat = struct.unpack_from("=" + _METRIC_FORMAT * count, request, _METRICS_AT)
    success = pynvml.NVML_SUCCESS
    return {
        metric_id: float(value)
        for metric_id, code, value in zip(flat[0::3], flat[1::3], flat[2::3], strict=True)
        if code == success
    }


@dataclass(slots=True)
class _Ring:
    """Two sample buffers; `latest` indexes the one holding the baseline, taken at `taken_at`.
    `requests[i]` is the metrics request from the other buffer (sample1) to buffer i, for
    `metrics`. `gpu_instance` is set for a MIG instance (`handle` is then its parent GPU's)."""

    handle: Any
    buffers: tuple[Any, Any]
    requests: tuple[bytes, bytes]
    metrics: tuple[GpmMetric, ...]
    gpu_instance: int | None = None
    latest: int | None = None
    taken_at: float = 0.0
    freed: bool = field(default=False)
    labels: Labels | None = None
    series: tuple[tuple[int, str, Labels, float], ...] = ()


class GpmCollector:
    """GPM rings for the GPUs that support it, keyed by the source's `gpu` label."""

    def __init__(
        self,
        metrics: tuple[GpmMetric, ...] = GPM_METRICS,
        *,
        mig_metrics: tuple[GpmMetric, ...] = MIG_GPM_METRICS,
        mig_sample_get: tuple[Any, ...] = MIG_SAMPLE_GET,
    ) -> None:
        self._metrics = metrics
        self._mig_metrics = mig_metrics
        self._mig_sample_get: Callable[..., Any] | None = (
            mig_sample_get[0] if mig_sample_get else None
        )
        self._rings: dict[str, _Ring] = {}
        self._unsupported: set[str] = set()
        self._denied = False

    @property
    def enabled(self) -> bool:
        """False once NVML denied GPM sampling (NO_PERMISSION)."""
        return not self._denied

    def keys(self) -> tuple[str, ...]:
        return tuple(self._rings)

    @property
    def unsupported(self) -> tuple[str, ...]:
        """Keys dropped because their sampling is not supported here (MIG instances)."""
        return tuple(sorted(self._unsupported))

    def add(
        self, key: str, handle: Any, errors: list[str], *, gpu_instance: int | None = None
    ) -> None:
        """Allocate the two sample buffers for GPU `key`, or for GPU instance `gpu_instance`
        of GPU `handle` (a MIG device; skipped when this pynvml cannot sample MIG). Skipped
        on failure, error noted."""
        metrics = self._metrics if gpu_instance is None else self._mig_metrics
        if gpu_instance is not None and (self._mig_sample_get is None or not metrics):
            self._unsupported.add(key)
            return
        try:
            first = pynvml.nvmlGpmSampleAlloc()
        except pynvml.NVMLError as exc:
            errors.append(error_name(exc.value))
            return
        try:
            second = pynvml.nvmlGpmSampleAlloc()
        except pynvml.NVMLError as exc:
            pynvml.nvmlGpmSampleFree(first)
            errors.append(error_name(exc.value))
            return
        ids = tuple(metric.metric_id for metric in metrics)
        requests = (metrics_request(second, first, ids), metrics_request(first, second, ids))
        self._rings[key] = _Ring(handle, (first, second), requests, metrics, gpu_instance)

    def collect(self, key: str, labels: Labels, now: float, errors: list[str]) -> list[Sample]:
        """This cycle's GPM samples for GPU `key` (empty until a window of >= 0.1 s exists).

        Raises GpuLostError when NVML says the GPU is lost.
        """
        ring = self._rings.get(key)
        if ring is None or self._denied:
            return []
        if ring.latest is not None and now - ring.taken_at < MIN_INTERVAL_SECONDS:
            return []
        target = 0 if ring.latest is None else 1 - ring.latest
        try:
            if ring.gpu_instance is None:
                pynvml.nvmlGpmSampleGet(ring.handle, ring.buffers[target])
            else:
                _mig_sample(
                    self._mig_sample_get, ring.handle, ring.gpu_instance, ring.buffers[target]
                )
            values: Mapping[int, float] = {}
            if ring.latest is not None:
                values = read_metrics(ring.requests[target], len(ring.metrics))
        except pynvml.NVMLError as exc:
            if ring.gpu_instance is not None and exc.value in _UNSUPPORTED:
                self._unsupported.add(key)
                self.drop(key)
                return []
            return self._failed(exc.value, ring, errors)
        ring.latest, ring.taken_at = target, now
        if not values:
            return []
        if ring.labels is not labels:  # label tuples checked against the catalog once
            ring.labels = labels
            ring.series = tuple(
                (
                    m.metric_id,
                    m.spec.name,
                    m.spec.sample(0.0, *labels, *m.extra_labels).labels,
                    m.scale,
                )
                for m in ring.metrics
            )
        return [
            Sample(name, series_labels, values[metric_id] * scale)
            for metric_id, name, series_labels, scale in ring.series
            if metric_id in values
        ]

    def _failed(self, code: int, ring: _Ring, errors: list[str]) -> list[Sample]:
        if code == pynvml.NVML_ERROR_GPU_IS_LOST:
            raise GpuLostError(error_name(code))
        if code == pynvml.NVML_ERROR_NO_PERMISSION:
            log.warning(
                "GPM sampling denied (NVML_ERROR_NO_PERMISSION): SM, tensor and DRAM activity "
                "metrics are off, field-value metrics continue. Profiling counters are "
                "restricted to admin users: run the exporter as root or with CAP_SYS_ADMIN, or "
                "load the driver with NVreg_RestrictProfilingToAdminUsers=0."
            )
            errors.append(error_name(code))
            self._denied = True
            self.close()
            return []
        if code != pynvml.NVML_ERROR_NOT_SUPPORTED:
            errors.append(error_name(code))
        ring.latest = None  # start a fresh window next time
        return []

    def drop(self, key: str) -> None:
        """Free GPU `key`'s buffers (its GPU was lost)."""
        ring = self._rings.pop(key, None)
        if ring is not None:
            _free(ring)

    def close(self) -> None:
        """Free every sample buffer. Idempotent."""
        rings, self._rings = self._rings, {}
        for ring in rings.values():
            _free(ring)


def _mig_sample(function: Callable[..., Any] | None, handle: Any, gi: int, buffer: Any) -> None:
    """nvmlGpmMigSampleGet, or FUNCTION_NOT_FOUND where this pynvml lacks it."""
    if function is None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
    function(handle, gi, buffer)


def _free(ring: _Ring) -> None:
    if ring.freed:
        return
    ring.freed = True
    for buffer in ring.buffers:
        try:
            pynvml.nvmlGpmSampleFree(buffer)
        except pynvml.NVMLError as exc:
            log.debug("nvmlGpmSampleFree failed: %s", error_name(exc.value))
