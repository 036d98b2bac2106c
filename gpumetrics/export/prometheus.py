"""Prometheus exposition of a Snapshot: a custom Collector over catalog x Snapshot.

The collector reads the latest snapshot at scrape time (like prometheus_client's
ProcessCollector); it never calls NVML or an engine. This is the only module that uses
prometheus_client for output; the scrape bridge's parser (`sources/engine/parse.py`) is the
only other importer, for reading engines' text (tests/test_boundaries.py enforces both).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from .. import catalog
from ..catalog import MetricSpec, MetricType
from ..promtext import CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE, TextRenderer
from ..samples import HistogramValue, Sample, Snapshot
from .negotiate import Format, choose_format

__all__ = ["PrometheusEndpoint", "SnapshotCollector", "families", "render_text"]

#: prometheus_client's OpenMetrics 1.0.0 encoder (untyped there).
_encode_openmetrics: Callable[[CollectorRegistry], bytes] = openmetrics.generate_latest


def _float_key(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _family(spec: MetricSpec, samples: Iterable[Sample]) -> Metric:
    labels = list(spec.labels)
    family: Metric
    if spec.type is MetricType.HISTOGRAM:
        histogram = HistogramMetricFamily(spec.name, spec.help, labels=labels, unit="")
        for sample in samples:
            value = sample.value
            if not isinstance(value, HistogramValue):
                continue
            buckets = [(_float_key(b), c) for b, c in zip(value.bounds, value.counts, strict=True)]
            buckets.append(("+Inf", value.count))
            histogram.add_metric(list(sample.labels), buckets, value.sum)
        return histogram
    if spec.type is MetricType.INFO:
        info = InfoMetricFamily(spec.base_name, spec.help, labels=labels)
        for sample in samples:
            info.add_metric(list(sample.labels), {})
        return info
    if spec.type is MetricType.COUNTER:
        family = CounterMetricFamily(spec.base_name, spec.help, labels=labels)
    else:
        family = GaugeMetricFamily(spec.name, spec.help, labels=labels)
    for sample in samples:
        if isinstance(sample.value, HistogramValue):
            continue
        family.add_metric(list(sample.labels), sample.value)
    return family


def families(snapshot: Snapshot, specs: Iterable[MetricSpec] = catalog.ALL) -> Iterator[Metric]:
    """One family per catalog entry that has samples in `snapshot`, in catalog order."""
    grouped = snapshot.by_metric()
    for spec in specs:
        samples = grouped.get(spec.name)
        if samples:
            yield _family(spec, samples)


class SnapshotCollector(Collector):
    """Yields the families of whatever snapshot `provider` returns at scrape time."""

    def __init__(
        self,
        provider: Callable[[], Snapshot],
        specs: Iterable[MetricSpec] = catalog.ALL,
    ) -> None:
        self._provider = provider
        self._specs = tuple(specs)

    def collect(self) -> Iterator[Metric]:
        return families(self._provider(), self._specs)


def render_text(snapshot: Snapshot, specs: Iterable[MetricSpec] = catalog.ALL) -> bytes:
    """Classic Prometheus text exposition of one snapshot, by prometheus_client's encoder."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot, specs))
    return generate_latest(registry)


class PrometheusEndpoint:
    """Serves a snapshot provider's metrics.

    The format follows the Accept header's preference (`negotiate.choose_format`: q-values
    and versions; Prometheus' default header prefers OpenMetrics 1.0.0). Both formats come
    from the fast `TextRenderer` (cached series prefixes). Series names are the same in both
    (counters `*_total`, info metrics `*_info`, no `_created`). With a `registry` of your own
    (process metrics, ...), prometheus_client renders it: appended to the classic text, and
    the whole OpenMetrics page (which must end in one `# EOF`) through its encoder.
    """

    def __init__(
        self,
        provider: Callable[[], Snapshot],
        specs: Iterable[MetricSpec] = catalog.ALL,
        registry: CollectorRegistry | None = None,
    ) -> None:
        specs = tuple(specs)
        self._provider = provider
        self._text = TextRenderer(specs)
        self._openmetrics = TextRenderer(specs, openmetrics=True)
        self._extra = registry
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(provider, specs))
        if registry is not None:
            self.registry.register(_RegistryCollector(registry))

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """(body, content type) for a request's Accept header."""
        if choose_format(accept) is Format.OPENMETRICS:
            if self._extra is None:
                return self._openmetrics.render(self._provider()), OPENMETRICS_CONTENT_TYPE
            return _encode_openmetrics(self.registry), openmetrics.CONTENT_TYPE_LATEST
        body = self._text.render(self._provider())
        if self._extra is not None:
            body += generate_latest(self._extra)
        return body, CONTENT_TYPE


class _RegistryCollector(Collector):
    """Re-exposes another registry's metrics (for the OpenMetrics path)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        return iter(self._registry.collect())
