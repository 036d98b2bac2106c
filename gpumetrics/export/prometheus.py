"""Prometheus exposition of a Snapshot: a custom Collector over catalog x Snapshot.

The collector reads the latest snapshot at scrape time (like prometheus_client's
ProcessCollector); it never calls NVML or an engine. This is the only module that imports
prometheus_client.
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
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from .. import catalog
from ..catalog import MetricSpec, MetricType
from ..model import HistogramValue, Sample, Snapshot

__all__ = ["PrometheusEndpoint", "SnapshotCollector", "families", "render_text"]


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
    """Classic Prometheus text exposition of one snapshot (what promtool lints)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot, specs))
    return generate_latest(registry)


class PrometheusEndpoint:
    """A registry holding the snapshot collector, rendered per request's Accept header.

    Pass your own `registry` to add process metrics or other collectors beside ours.
    """

    def __init__(
        self,
        provider: Callable[[], Snapshot],
        specs: Iterable[MetricSpec] = catalog.ALL,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(provider, specs))

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """(body, content type): classic text unless the scraper asks for OpenMetrics."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
