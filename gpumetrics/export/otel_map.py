"""Catalog x Snapshot in OpenTelemetry terms, as pure functions (no opentelemetry import).

`otel.py` feeds these to the SDK; keeping them here makes the mapping testable without it.

Instruments (`instrument_kind`): catalog gauges become ObservableGauges, except those the
semantic conventions define as UpDownCounters (`hw.gpu.memory.usage`, `hw.gpu.memory.limit`,
`hw.status`); counters become ObservableCounters (cumulative, monotonic);
histograms are built from our cumulative buckets (`otlp_buckets`); info metrics are skipped:
OTel has no info type, the resource is fixed before the first sample arrives, and the facts
that identify a series (`hw.id`, `hw.model`, the engine's kind) ride on its points already.

Attributes and the per-metric semantic-convention rules (ECC scope, temperature sensors as
components, GPU status as a state set, gen_ai.* attributes) live in `otel_semconv`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

from ..catalog import MetricSpec, MetricType
from ..catalog import engine as engine_catalog
from ..samples import HistogramValue, Labels, Sample, Snapshot
from . import otel_semconv as semconv
from .otel_semconv import (
    ATTRIBUTE_KEYS,
    ATTRIBUTE_PREFIX,
    ATTRIBUTE_VALUES,
    COMPONENTS,
    DEFAULT_PROVIDER,
    GEN_AI_OPERATION,
    METRIC_ATTRIBUTE_KEYS,
    PREFERRED_VALUES,
    STATE_SETS,
    UP_DOWN_COUNTERS,
    attribute_key,
    attributes,
)

__all__ = [
    "ATTRIBUTE_KEYS",
    "ATTRIBUTE_PREFIX",
    "ATTRIBUTE_VALUES",
    "COMPONENTS",
    "DEFAULT_PROVIDER",
    "GEN_AI_OPERATION",
    "METRIC_ATTRIBUTE_KEYS",
    "OTLP_METRICS_PATH",
    "PREFERRED_VALUES",
    "STATE_SETS",
    "UP_DOWN_COUNTERS",
    "Frame",
    "HistogramRow",
    "InstrumentKind",
    "OtlpBuckets",
    "Series",
    "SnapshotView",
    "StartTimes",
    "attribute_key",
    "attributes",
    "exportable",
    "histogram_rows",
    "instrument_kind",
    "otlp_buckets",
    "otlp_metrics_url",
]

log = logging.getLogger(__name__)

#: The OTLP/HTTP signal path for metrics.
OTLP_METRICS_PATH = "/v1/metrics"


def otlp_metrics_url(endpoint: str) -> str:
    """The full OTLP/HTTP metrics URL for `endpoint`.

    A base URL gets `/v1/metrics` appended (`http://collector:4318` ->
    `http://collector:4318/v1/metrics`, `https://gw/otlp/` -> `https://gw/otlp/v1/metrics`), as
    the OTel spec does for `OTEL_EXPORTER_OTLP_ENDPOINT`; a URL that already ends in it is kept.
    """
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"OTLP endpoint must be an http:// or https:// URL, got {endpoint!r}")
    path = parts.path.rstrip("/")
    if not path.endswith(OTLP_METRICS_PATH):
        path += OTLP_METRICS_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class InstrumentKind(StrEnum):
    """Which OTel instrument (or data point kind) carries a catalog entry."""

    GAUGE = "gauge"
    COUNTER = "counter"
    UP_DOWN_COUNTER = "up_down_counter"
    HISTOGRAM = "histogram"


def instrument_kind(spec: MetricSpec) -> InstrumentKind | None:
    """The instrument for `spec`, or None for info metrics (not exported over OTLP)."""
    if spec.type is MetricType.INFO:
        return None
    if spec.type is MetricType.COUNTER:
        return InstrumentKind.COUNTER
    if spec.type is MetricType.HISTOGRAM:
        return InstrumentKind.HISTOGRAM
    if spec.otel_name in UP_DOWN_COUNTERS:
        return InstrumentKind.UP_DOWN_COUNTER
    return InstrumentKind.GAUGE


def exportable(specs: Iterable[MetricSpec]) -> tuple[MetricSpec, ...]:
    """The entries to export: no info metrics, and one entry per OTel name.

    Two entries with one OTel name would be one instrument identity with two units; the first
    wins and the others are logged (the catalog test for unique OTel names should catch it).
    """
    kept: dict[str, MetricSpec] = {}
    for spec in specs:
        if instrument_kind(spec) is None:
            continue
        first = kept.setdefault(spec.otel_name, spec)
        if first is not spec:
            log.warning(
                "OTel name %r is taken by %s; not exporting %s over OTLP",
                spec.otel_name,
                first.name,
                spec.name,
            )
    return tuple(kept.values())


@dataclass(frozen=True, slots=True)
class OtlpBuckets:
    """An OTLP explicit-bucket histogram point's numbers.

    `bucket_counts` are per bucket, NOT cumulative, with one more entry than `explicit_bounds`
    (the last bucket is (last bound, +Inf)); `count` is their sum.
    """

    explicit_bounds: tuple[float, ...]
    bucket_counts: tuple[int, ...]
    count: int
    sum: float


def otlp_buckets(value: HistogramValue) -> OtlpBuckets:
    """Our cumulative histogram (`counts[i]` = observations <= `bounds[i]`) as OTLP buckets.

    Bounds pass through unchanged (seconds, as the catalog defines them); a +Inf bound is
    dropped because OTLP's last bucket is implicit. Counts are rounded to integers; a total
    below the last cumulative bucket is raised to it, so `count == sum(bucket_counts)` holds.
    """
    bounds: list[float] = []
    cumulative: list[int] = []
    for bound, count in zip(value.bounds, value.counts, strict=True):
        if math.isinf(bound) and bound > 0:
            continue
        bounds.append(float(bound))
        cumulative.append(round(count))
    cumulative.append(max([round(value.count), *cumulative]))
    per_bucket: list[int] = []
    previous = 0
    for running in cumulative:
        per_bucket.append(max(running - previous, 0))
        previous = max(previous, running)
    return OtlpBuckets(tuple(bounds), tuple(per_bucket), sum(per_bucket), float(value.sum))


class StartTimes:
    """Start time (ns) of each cumulative series: when it was first seen, or when its count
    went down (the engine restarted and its counters began again).

    Only series in the latest `update` are remembered, so memory follows live cardinality.
    """

    def __init__(self) -> None:
        self._series: dict[Hashable, tuple[int, float]] = {}

    def update(
        self, observed: Iterable[tuple[Hashable, float]], now_ns: int
    ) -> dict[Hashable, int]:
        """Record this export's (series key, cumulative count) pairs; their start times."""
        series: dict[Hashable, tuple[int, float]] = {}
        for key, count in observed:
            previous = self._series.get(key)
            start = now_ns if previous is None or count < previous[1] else previous[0]
            series[key] = (start, count)
        self._series = series
        return {key: start for key, (start, _) in series.items()}


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a catalog entry, ready for OTel: its labels, attributes and value."""

    labels: Labels
    attributes: dict[str, str]
    value: float | HistogramValue


@dataclass(frozen=True, slots=True)
class Frame:
    """One snapshot grouped for export: samples by metric and each engine's kind."""

    snapshot: Snapshot
    by_metric: Mapping[str, Sequence[Sample]]
    providers: Mapping[tuple[str, str], str]

    @classmethod
    def of(cls, snapshot: Snapshot) -> Frame:
        """Group `snapshot` once; engine kinds come from `gpumetrics_engine_info`."""
        by_metric = snapshot.by_metric()
        info = engine_catalog.ENGINE_INFO
        providers: dict[tuple[str, str], str] = {}
        for sample in by_metric.get(info.name, ()):
            named = dict(zip(info.labels, sample.labels, strict=False))
            if named.get("kind"):
                providers[(named.get("engine", ""), named.get("model", ""))] = named["kind"]
        return cls(snapshot, by_metric, providers)

    def has(self, specs: Iterable[MetricSpec]) -> bool:
        """Whether any of `specs` has samples here."""
        return any(self.by_metric.get(spec.name) for spec in specs)

    def series(self, spec: MetricSpec) -> Iterator[Series]:
        """`spec`'s series in this snapshot, as OTel sees them (`PREFERRED_VALUES`,
        `STATE_SETS`); samples with the wrong label count are skipped."""
        samples: list[Sample] = []
        for sample in self.by_metric.get(spec.name, ()):
            if len(sample.labels) == len(spec.labels):
                samples.append(sample)
            else:
                log.debug("skipping %s sample with labels %s", spec.name, sample.labels)
        rule = PREFERRED_VALUES.get(spec.name)
        if rule is not None:
            samples = semconv.preferred(spec, samples, *rule)
        states = STATE_SETS.get(spec.name)
        for sample in samples:
            named = dict(zip(spec.labels, sample.labels, strict=True))
            provider = self.providers.get(
                (named.get("engine", ""), named.get("model", "")), DEFAULT_PROVIDER
            )
            attrs = attributes(spec, sample.labels, provider=provider)
            if states is None or isinstance(sample.value, HistogramValue):
                yield Series(sample.labels, attrs, sample.value)
                continue
            yield Series(sample.labels, {**attrs, states.key: states.up}, sample.value)
            yield Series(sample.labels, {**attrs, states.key: states.down}, 1.0 - sample.value)


class SnapshotView:
    """The snapshot a collection cycle reads: taken once per cycle (`pin`), shared by every
    instrument callback and the histogram builder, so one export never mixes two snapshots.

    A source that raises yields an empty frame (nothing exported this cycle) and a log line:
    it must not kill the export thread.
    """

    def __init__(self, source: Callable[[], Snapshot]) -> None:
        self._source = source
        self._pinned: Frame | None = None

    def pin(self) -> Frame:
        """Read the source once for this cycle."""
        self._pinned = self._read()
        return self._pinned

    def unpin(self) -> None:
        """End the cycle."""
        self._pinned = None

    def current(self) -> Frame:
        """The pinned frame, or a fresh read outside a cycle."""
        return self._pinned if self._pinned is not None else self._read()

    def _read(self) -> Frame:
        try:
            return Frame.of(self._source())
        except Exception:
            log.exception("reading the snapshot failed; nothing is exported this cycle")
            return Frame.of(Snapshot(taken_at=0.0))


@dataclass(frozen=True, slots=True)
class HistogramRow:
    """One cumulative histogram point to export."""

    spec: MetricSpec
    attributes: dict[str, str]
    buckets: OtlpBuckets
    start_time_unix_nano: int
    time_unix_nano: int


def histogram_rows(
    frame: Frame, specs: Iterable[MetricSpec], starts: StartTimes, now_ns: int
) -> list[HistogramRow]:
    """The histogram points of `frame` for `specs`, with start times from `starts`."""
    found: list[tuple[MetricSpec, Series, OtlpBuckets]] = []
    for spec in specs:
        if instrument_kind(spec) is not InstrumentKind.HISTOGRAM:
            continue
        for series in frame.series(spec):
            if isinstance(series.value, HistogramValue):
                found.append((spec, series, otlp_buckets(series.value)))
    start_of = starts.update((((s.name, x.labels), b.count) for s, x, b in found), now_ns)
    return [
        HistogramRow(spec, series.attributes, buckets, start_of[(spec.name, series.labels)], now_ns)
        for spec, series, buckets in found
    ]
