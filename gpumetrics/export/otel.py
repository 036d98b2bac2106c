"""OpenTelemetry export of a Snapshot: observable instruments pushed over OTLP/HTTP.

The twin of `prometheus.py`: it walks catalog x Snapshot and never calls NVML or an engine.
This is the only module that imports opentelemetry; names, attributes and bucket arithmetic
are pure functions in `otel_map.py` (its docstring has the attribute table).

`OtelExporter` owns the whole pipeline, on a MeterProvider of its own (never the global one):

    provider_source() -> one snapshot pinned per collection cycle
      -> ObservableGauge / ObservableCounter / ObservableUpDownCounter callbacks (the SDK's)
      -> _SnapshotReader (a MetricReader: every interval_s, a final export on shutdown)
      -> _HistogramAppender (adds our histograms) -> OTLPMetricExporter (gzip, /v1/metrics)

Gauges and counters go through real SDK instruments: callbacks yield the pinned snapshot's
values (counters as their raw cumulative values: cumulative, monotonic Sums). Every instrument
is exported cumulative (our reader decides; OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE
does not apply).

Histograms skip the SDK instrument path. The API has no observable histogram, and a
synchronous Histogram needs individual observations, which we never see: sources give us
cumulative bucket counts. Re-recording them (bucket midpoints, say) would invent the sum and
the distribution. So at each export `_HistogramAppender`, wrapped around the OTLP exporter,
builds one cumulative explicit-bucket `HistogramDataPoint` per series straight from the same
pinned snapshot: the sample's bounds (seconds, the catalog's buckets), per-bucket counts
derived from our cumulative ones (OTLP buckets are not cumulative), sum and count; min and max
stay unset because nobody knows them. They join the SDK's points under the same resource and
scope, so one request carries the whole snapshot. A series' start time is when it was first
seen, renewed when its count goes down (a restarted engine). A cycle whose snapshot has only
histograms (the SDK then has nothing to export) still sends them.

Info metrics are not exported (see `otel_map`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from time import time_ns
from typing import Any

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .. import __version__, catalog
from ..catalog import MetricSpec
from ..samples import HistogramValue, Snapshot
from .otel_map import (
    HistogramRow,
    InstrumentKind,
    SnapshotView,
    StartTimes,
    exportable,
    histogram_rows,
    instrument_kind,
    otlp_metrics_url,
)

__all__ = ["OtelExporter"]

log = logging.getLogger(__name__)

_NAME = "gpumetrics"  # instrumentation scope, and service.name unless configured


def _observe(view: SnapshotView, spec: MetricSpec, options: CallbackOptions) -> list[Observation]:
    """An observable instrument's callback: `spec`'s numeric series in the pinned snapshot."""
    observations: list[Observation] = []
    for series in view.current().series(spec):
        if not isinstance(series.value, HistogramValue):
            observations.append(Observation(series.value, series.attributes))
    return observations


def _register(meter: Meter, spec: MetricSpec, view: SnapshotView) -> None:
    """Create `spec`'s observable instrument on `meter` (histograms have none)."""
    callbacks = [partial(_observe, view, spec)]
    kind = instrument_kind(spec)
    name, unit, help_ = spec.otel_name, spec.otel_unit, spec.help
    if kind is InstrumentKind.GAUGE:
        meter.create_observable_gauge(name, callbacks, unit=unit, description=help_)
    elif kind is InstrumentKind.COUNTER:
        meter.create_observable_counter(name, callbacks, unit=unit, description=help_)
    elif kind is InstrumentKind.UP_DOWN_COUNTER:
        meter.create_observable_up_down_counter(name, callbacks, unit=unit, description=help_)


def _histogram_point(row: HistogramRow) -> HistogramDataPoint:
    return HistogramDataPoint(
        attributes=row.attributes,
        start_time_unix_nano=row.start_time_unix_nano,
        time_unix_nano=row.time_unix_nano,
        count=row.buckets.count,
        sum=row.buckets.sum,
        bucket_counts=list(row.buckets.bucket_counts),
        explicit_bounds=list(row.buckets.explicit_bounds),
        # OTLP's min/max are optional and unknown here; None leaves them unset on the wire.
        min=None,  # type: ignore[arg-type]
        max=None,  # type: ignore[arg-type]
    )


class _HistogramAppender(MetricExporter):
    """Wraps the OTLP exporter: appends our histograms to each export and counts results."""

    def __init__(
        self,
        inner: MetricExporter,
        view: SnapshotView,
        specs: Iterable[MetricSpec],
        resource: Resource,
        scope: InstrumentationScope,
        endpoint: str,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._endpoint = endpoint
        self._view = view
        self.specs = tuple(s for s in specs if instrument_kind(s) is InstrumentKind.HISTOGRAM)
        self._resource = resource
        self._scope = scope
        self._starts = StartTimes()
        self.calls = 0
        self.failures = 0

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.calls += 1
        try:
            data = self._with_histograms(metrics_data)
            result = self._inner.export(data, timeout_millis=timeout_millis)
        except Exception:
            log.exception("OTLP export to %s raised", self._endpoint)
            result = MetricExportResult.FAILURE
        if result is not MetricExportResult.SUCCESS:
            self.failures += 1
            log.warning("OTLP export to %s failed; the next one retries", self._endpoint)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis)

    def _histograms(self) -> list[Metric]:
        rows = histogram_rows(self._view.current(), self.specs, self._starts, time_ns())
        points: dict[str, list[HistogramDataPoint]] = {}
        for row in rows:
            points.setdefault(row.spec.name, []).append(_histogram_point(row))
        return [
            Metric(
                name=spec.otel_name,
                description=spec.help,
                unit=spec.otel_unit,
                data=Histogram(points[spec.name], AggregationTemporality.CUMULATIVE),
            )
            for spec in self.specs
            if spec.name in points
        ]

    def _with_histograms(self, metrics_data: MetricsData) -> MetricsData:
        extra = self._histograms()
        if not extra:
            return metrics_data
        resources = list(metrics_data.resource_metrics)
        for i, resource_metrics in enumerate(resources):
            scopes = list(resource_metrics.scope_metrics)
            for j, scope_metrics in enumerate(scopes):
                if scope_metrics.scope.name == self._scope.name:
                    metrics = [*scope_metrics.metrics, *extra]
                    scopes[j] = ScopeMetrics(scope_metrics.scope, metrics, scope_metrics.schema_url)
                    resources[i] = ResourceMetrics(
                        resource_metrics.resource, scopes, resource_metrics.schema_url
                    )
                    return MetricsData(resources)
        scope_metrics = ScopeMetrics(self._scope, extra, self._scope.schema_url or "")
        resources.append(
            ResourceMetrics(self._resource, [scope_metrics], self._resource.schema_url)
        )
        return MetricsData(resources)


class _SnapshotReader(MetricReader):
    """A periodic reader with one pinned snapshot and one known result per cycle.

    Like the SDK's PeriodicExportingMetricReader, but its cycles are serialised and `cycle()`
    returns whether every export in it succeeded, which `force_flush` and `shutdown` report.
    After the final cycle further collections do nothing, so shutdown sends exactly one final
    export.
    """

    def __init__(
        self,
        appender: _HistogramAppender,
        view: SnapshotView,
        interval_s: float,
        timeout_s: float,
    ) -> None:
        super().__init__()  # every instrument kind cumulative: the SDK's default
        self._appender = appender
        self._view = view
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._cycle_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the export thread (none when the interval is infinite: flushes only)."""
        if math.isfinite(self._interval_s):
            self._thread = threading.Thread(target=self._tick, name="gpumetrics-otlp", daemon=True)
            self._thread.start()

    def _tick(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.cycle(self._timeout_s)

    def cycle(self, timeout_s: float, *, final: bool = False) -> bool:
        """Collect and export once, waiting up to `timeout_s` for a running cycle to end."""
        if not self._cycle_lock.acquire(timeout=timeout_s):
            log.warning(
                "an OTLP export is still running after %.1f s; skipping this one", timeout_s
            )
            return False
        try:
            if self._closed:
                return True
            self._closed = final
            return self._run(timeout_s * 1000)
        finally:
            self._cycle_lock.release()

    def _run(self, timeout_millis: float) -> bool:
        frame = self._view.pin()
        calls, failures = self._appender.calls, self._appender.failures
        try:
            self.collect(timeout_millis=timeout_millis)
            if self._appender.calls == calls and frame.has(self._appender.specs):
                # the SDK had nothing to export, but our histograms are there
                self._receive_metrics(MetricsData([]), timeout_millis=timeout_millis)
        except Exception:  # a timeout in callbacks must not kill the export thread
            log.exception("OTLP metric collection failed")
            return False
        finally:
            self._view.unpin()
        return self._appender.failures == failures

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._appender.export(metrics_data, timeout_millis=timeout_millis)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.cycle(timeout_millis / 1000)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_millis / 1000)
        self._appender.shutdown(timeout_millis=timeout_millis)


def _resource(attributes: Mapping[str, str]) -> Resource:
    """Our attributes over OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME over the SDK's;
    `service.name` is "gpumetrics" unless one of them sets it."""
    resource = Resource.create(dict(attributes))
    name = resource.attributes.get(SERVICE_NAME)
    if not isinstance(name, str) or name.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: _NAME}))
    return resource


class OtelExporter:
    """Pushes whatever snapshot `provider_source` returns to an OTLP/HTTP endpoint.

    `endpoint`: the collector's base URL (`http://collector:4318`; `/v1/metrics` is appended)
    or its full metrics URL. `interval_s`: seconds between exports. `headers`: sent with every
    request (auth tokens); when None, OTEL_EXPORTER_OTLP_METRICS_HEADERS applies.
    `resource_attributes`: what this exporter runs on (`host.name`, `k8s.node.name`, ...),
    over OTEL_RESOURCE_ATTRIBUTES. `timeout_s`: deadline of one export, retries included.
    `specs`: the catalog entries to export.

    Nothing runs until `start()`. `force_flush()` exports now; `shutdown()` sends a final
    export and stops. Neither raises when the endpoint is down: they return False and log.
    """

    def __init__(
        self,
        provider_source: Callable[[], Snapshot],
        endpoint: str,
        *,
        interval_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        resource_attributes: Mapping[str, str] | None = None,
        timeout_s: float = 5.0,
        specs: Iterable[MetricSpec] = catalog.ALL,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self._source = provider_source
        self._endpoint = otlp_metrics_url(endpoint)
        self._interval_s = interval_s
        self._headers = dict(headers) if headers is not None else None
        self._resource_attributes = dict(resource_attributes or {})
        self._timeout_s = timeout_s
        self._specs = exportable(specs)
        self._lock = threading.Lock()
        self._provider: MeterProvider | None = None
        self._reader: _SnapshotReader | None = None
        self._closed = False

    @property
    def endpoint(self) -> str:
        """The full URL exports go to (ends in /v1/metrics)."""
        return self._endpoint

    @property
    def meter_provider(self) -> MeterProvider | None:
        """The MeterProvider `start()` built (None before): add your own instruments to it."""
        return self._provider

    def start(self) -> None:
        """Build the provider, register the instruments and start the export thread."""
        with self._lock:
            if self._closed:
                raise RuntimeError("OtelExporter was shut down; build a new one")
            if self._provider is not None:
                raise RuntimeError("OtelExporter already started")
            resource = _resource(self._resource_attributes)
            scope = InstrumentationScope(_NAME, __version__)
            view = SnapshotView(self._source)
            otlp = OTLPMetricExporter(
                endpoint=self._endpoint,
                headers=self._headers,
                timeout=self._timeout_s,
                compression=Compression.Gzip,
            )
            appender = _HistogramAppender(otlp, view, self._specs, resource, scope, self._endpoint)
            reader = _SnapshotReader(appender, view, self._interval_s, self._timeout_s)
            provider = MeterProvider([reader], resource=resource, shutdown_on_exit=False)
            meter = provider.get_meter(_NAME, __version__)
            for spec in self._specs:
                _register(meter, spec, view)
            reader.start()
            self._provider, self._reader = provider, reader

    def force_flush(self, timeout_s: float | None = None) -> bool:
        """Export the current snapshot now; True when it arrived (or there was nothing).

        `timeout_s` (default: the export timeout) bounds the wait for a running periodic
        export; the export itself is bounded by the constructor's `timeout_s`.
        """
        reader = self._reader
        if reader is None or self._closed:
            log.warning("OtelExporter.force_flush() before start() or after shutdown()")
            return False
        return reader.cycle(self._timeout_s if timeout_s is None else timeout_s)

    def shutdown(self, timeout_s: float | None = None) -> bool:
        """Send a final export and stop; True when the final export arrived. Idempotent."""
        with self._lock:
            if self._closed:
                return True
            self._closed = True
            provider, reader = self._provider, self._reader
        if provider is None or reader is None:
            return True
        timeout = self._timeout_s if timeout_s is None else timeout_s
        ok = reader.cycle(timeout, final=True)
        try:
            provider.shutdown(timeout_millis=timeout * 1000)
        except Exception:
            log.exception("shutting down the OTLP exporter failed")
            ok = False
        return ok
