"""The shape of one catalog entry, and the naming rules every entry obeys."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from ..samples import HistogramValue, Sample

__all__ = [
    "Group",
    "MetricSpec",
    "MetricType",
    "Source",
    "Stability",
    "metric",
    "naming_problems",
    "unit_of",
]


class MetricType(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    INFO = "info"


class Source(StrEnum):
    """Where the value comes from (for docs, `doctor`, and per-source status)."""

    NVML = "nvml"
    GPM = "gpm"
    INFINIBAND = "infiniband"
    ENGINE = "engine"
    SPEC_TABLE = "spec_table"
    EXPORTER = "exporter"
    DERIVED = "derived"
    KUBERNETES = "kubernetes"


class Stability(StrEnum):
    STABLE = "stable"
    EXPERIMENTAL = "experimental"


class Group(StrEnum):
    """Sections of METRICS.md and rows of the dashboards."""

    GPU = "GPU device"
    NVLINK = "NVLink"
    GPM = "GPM profiling (Hopper and newer)"
    INFINIBAND = "InfiniBand / RoCE"
    ENGINE_KV = "Engine: KV cache"
    ENGINE_BATCH = "Engine: batching and load"
    ENGINE_WORK = "Engine: work done (FLOPs, bytes, tokens)"
    ENGINE_LATENCY = "Engine: latency"
    PEAKS = "GPU peaks (spec table)"
    PODS = "Pod attribution (Kubernetes)"
    DERIVED = "Derived over a window (computed by serve)"
    EXPORTER = "Exporter self-metrics"


# Prometheus unit suffix -> OpenTelemetry (UCUM) unit, for the units we use.
OTEL_UNITS: dict[str, str] = {
    "bytes": "By",
    "seconds": "s",
    "joules": "J",
    "watts": "W",
    "celsius": "Cel",
    "hertz": "Hz",
    "ratio": "1",
    "bytes_per_second": "By/s",
    "flops_per_second": "{flop}/s",
    "flops_per_byte": "{flop}/By",
    "tokens_per_second": "{token}/s",
    "flops": "{flop}",
    "tokens": "{token}",
    "blocks": "{block}",
    "sequences": "{sequence}",
    "requests": "{request}",
    "errors": "{error}",
    "": "1",
}

#: Units that are measures (dropped from OTel names); the others count things.
BASE_UNITS = frozenset(
    {
        "bytes",
        "seconds",
        "joules",
        "watts",
        "celsius",
        "hertz",
        "ratio",
        "bytes_per_second",
        "flops_per_second",
        "flops_per_byte",
        "tokens_per_second",
    }
)

_NAME = re.compile(r"^gpumetrics_[a-z][a-z0-9_]*[a-z0-9]$")
_LABEL = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED_LABELS = frozenset({"le", "quantile", "instance", "job", "hostname"})


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported metric family.

    `name` is the full Prometheus exposition name: counters end in `_total`, info metrics in
    `_info`, histograms carry no suffix (the exposition adds `_bucket`, `_sum`, `_count`).
    `unit` is the Prometheus base-unit suffix the name carries before `_total` ("" if none).
    """

    name: str
    type: MetricType
    unit: str
    help: str
    labels: tuple[str, ...]
    otel_name: str
    otel_unit: str
    source: Source
    group: Group
    stability: Stability = Stability.STABLE
    buckets: tuple[float, ...] = ()

    @property
    def base_name(self) -> str:
        """The name without the `_total` / `_info` suffix that client libraries add."""
        if self.type is MetricType.COUNTER:
            return self.name.removesuffix("_total")
        if self.type is MetricType.INFO:
            return self.name.removesuffix("_info")
        return self.name

    def sample(self, value: float | HistogramValue, *labels: str) -> Sample:
        """A sample of this metric; label values in the order of `labels`."""
        if len(labels) != len(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {labels}")
        return Sample(self.name, labels, value)


def naming_problems(spec: MetricSpec) -> list[str]:
    """What is wrong with an entry under DESIGN.md §4; empty when it is fine."""
    problems: list[str] = []
    if not _NAME.match(spec.name) or "__" in spec.name:
        problems.append("name must be gpumetrics_ + lower_snake_case")
    is_counter = spec.type is MetricType.COUNTER
    if is_counter != spec.name.endswith("_total"):
        problems.append("_total suffix is for counters, and counters need it")
    if spec.type is MetricType.INFO and not spec.name.endswith("_info"):
        problems.append("info metrics end in _info")
    if spec.unit and not spec.base_name.endswith("_" + spec.unit):
        problems.append(f"name must end in its unit _{spec.unit}")
    if spec.unit not in OTEL_UNITS:
        problems.append(f"unknown unit {spec.unit!r}")
    if spec.type is MetricType.HISTOGRAM and (
        not spec.buckets or list(spec.buckets) != sorted(set(spec.buckets))
    ):
        problems.append("histograms need strictly increasing buckets")
    if spec.type is not MetricType.HISTOGRAM and spec.buckets:
        problems.append("only histograms have buckets")
    for label in spec.labels:
        if not _LABEL.match(label) or label in _RESERVED_LABELS:
            problems.append(f"bad label {label!r}")
    if len(set(spec.labels)) != len(spec.labels):
        problems.append("duplicate labels")
    if not spec.help or not (spec.help[0].isupper() or spec.help[0].isdigit()):
        problems.append("help must start with a capital or a digit")
    if not spec.help.endswith("."):
        problems.append("help must be a sentence ending in a full stop")
    if not spec.otel_name or " " in spec.otel_name:
        problems.append("otel_name missing")
    return problems


def unit_of(name: str) -> str:
    """The unit suffix a metric name carries (longest match), or "" when it has none."""
    base = name.removesuffix("_total").removesuffix("_info")
    for unit in sorted(OTEL_UNITS, key=len, reverse=True):
        if unit and base.endswith("_" + unit):
            return unit
    return ""


def metric(
    name: str,
    type: MetricType,
    help: str,
    labels: tuple[str, ...],
    *,
    source: Source,
    group: Group,
    otel_name: str | None = None,
    stability: Stability = Stability.STABLE,
    buckets: tuple[float, ...] = (),
) -> MetricSpec:
    """Build an entry, taking the unit from the name and the OTel unit from the unit.

    Without an explicit `otel_name` the OTel name is the Prometheus base name with dots:
    `gpumetrics_engine_kv_cache_usage_ratio` -> `gpumetrics.engine.kv_cache_usage`. A base
    unit suffix is dropped (OTel carries units out of band); a counted noun (tokens, blocks,
    flops, ...) stays, since it says what is counted: `gpumetrics.engine.recomputed_tokens`.
    """
    unit = unit_of(name)
    if otel_name is None:
        base = name.removesuffix("_total")
        if unit in BASE_UNITS:
            base = base.removesuffix("_" + unit)
        prefix, _, rest = base.partition("_")
        area, _, leaf = rest.partition("_")
        otel_name = f"{prefix}.{area}.{leaf}"
    return MetricSpec(
        name=name,
        type=type,
        unit=unit,
        help=help,
        labels=labels,
        otel_name=otel_name,
        otel_unit=OTEL_UNITS[unit],
        source=source,
        group=group,
        stability=stability,
        buckets=buckets,
    )
