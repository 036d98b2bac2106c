"""The classic Prometheus text format (0.0.4) and OpenMetrics 1.0.0 for catalog samples: the one
renderer behind the sidecar's /metrics and the engine hooks' endpoint.

Standard library only, so that `gpumetrics.hooks` (imported by inference engines) can use it,
and written by hand, beside prometheus_client's encoder, for speed: a node with 8 GPUs exports
~1,800 series (18 NVLink links each), and building prometheus_client Metric objects and
Sample tuples for each costs ~14 µs a series, ~25 ms a scrape. Series are stable from one
snapshot to the next, so this renderer caches each series' line prefix (`name{labels} `) and
per scrape only formats values: ~1 µs a series. Its output is checked against
prometheus_client's encoders and parsers (both formats), and against promtool, in the tests.

OpenMetrics differs only in the metadata and the end: a counter's or info metric's family is
named without its `_total` / `_info` suffix (the series keep it), info is its own type, HELP
escapes double quotes, bucket bounds are floats, and the page ends in `# EOF`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from . import catalog
from .catalog import MetricSpec, MetricType
from .samples import HistogramValue, Labels, Sample, Snapshot

__all__ = [
    "CONTENT_TYPE",
    "OPENMETRICS_CONTENT_TYPE",
    "TextRenderer",
    "escape_help",
    "escape_label_value",
    "format_value",
    "render_samples",
]

#: Content-Type of the classic text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Content-Type of OpenMetrics 1.0.0 (what prometheus_client's encoder sends).
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def format_value(value: float) -> str:
    """A sample value as Prometheus reads it: ints exact (counters past 2^53 keep every
    digit), floats by repr (2.5e+10), +Inf, -Inf, NaN."""
    if type(value) is int:
        return str(value)
    if math.isfinite(value):
        return repr(float(value))
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def escape_label_value(value: str) -> str:
    """Escape a label value: backslash, double quote and line feed."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    """Escape HELP text: backslash and line feed."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(names: Iterable[str], values: Iterable[str]) -> str:
    pairs = ",".join(f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}" if pairs else ""


class TextRenderer:
    """Renders snapshots for a fixed list of catalog entries; reuse one instance per endpoint.

    Caches are bounded: when series churn (pids come and go) makes the prefix cache four times
    larger than the last scrape needed, it is rebuilt.
    """

    def __init__(self, specs: Iterable[MetricSpec], *, openmetrics: bool = False) -> None:
        self._specs = tuple(specs)
        self._openmetrics = openmetrics
        self._headers = {
            spec.name: _openmetrics_header(spec) if openmetrics else _header(spec)
            for spec in self._specs
        }
        self._prefixes: dict[str, dict[Labels, str]] = {}

    def render(self, snapshot: Snapshot) -> bytes:
        """The whole exposition, families in catalog order, absent metrics omitted."""
        grouped = snapshot.by_metric()
        out: list[str] = []
        prefixes = self._prefixes
        used = 0
        for spec in self._specs:
            samples = grouped.get(spec.name)
            if not samples:
                continue
            out.append(self._headers[spec.name])
            if spec.type is MetricType.HISTOGRAM:
                for sample in samples:
                    if isinstance(sample.value, HistogramValue):
                        out.append(self._histogram(spec, sample.labels, sample.value))
                continue
            cache = prefixes.setdefault(spec.name, {})
            info = spec.type is MetricType.INFO
            for sample in samples:
                value = sample.value
                if isinstance(value, HistogramValue):
                    continue
                prefix = cache.get(sample.labels)
                if prefix is None:
                    prefix = cache[sample.labels] = self._prefix(spec, sample.labels)
                out.append(prefix + ("1\n" if info else format_value(value) + "\n"))
            used += len(samples)
        if sum(len(c) for c in prefixes.values()) > 4 * used + 1024:
            self._prefixes = {}
        if self._openmetrics:
            out.append("# EOF\n")
        return "".join(out).encode()

    @staticmethod
    def _prefix(spec: MetricSpec, labels: Labels) -> str:
        return spec.name + _labels(spec.labels, labels) + " "

    @staticmethod
    def _histogram(spec: MetricSpec, labels: Labels, value: HistogramValue) -> str:
        base = ",".join(
            f'{n}="{escape_label_value(v)}"' for n, v in zip(spec.labels, labels, strict=True)
        )
        sep = "," if base else ""
        lines = [
            f'{spec.name}_bucket{{{base}{sep}le="{format_value(float(bound))}"}} '
            f"{format_value(count)}\n"
            for bound, count in zip(value.bounds, value.counts, strict=True)
        ]
        lines.append(f'{spec.name}_bucket{{{base}{sep}le="+Inf"}} {format_value(value.count)}\n')
        braces = f"{{{base}}}" if base else ""
        lines.append(f"{spec.name}_sum{braces} {format_value(value.sum)}\n")
        lines.append(f"{spec.name}_count{braces} {format_value(value.count)}\n")
        return "".join(lines)


def _header(spec: MetricSpec) -> str:
    kind = "gauge" if spec.type is MetricType.INFO else spec.type
    return f"# HELP {spec.name} {escape_help(spec.help)}\n# TYPE {spec.name} {kind}\n"


def _openmetrics_header(spec: MetricSpec) -> str:
    family = spec.base_name  # counters and info metrics: the name without its suffix
    text = escape_help(spec.help).replace('"', '\\"')
    return f"# HELP {family} {text}\n# TYPE {family} {spec.type}\n"


_DEFAULT = TextRenderer(catalog.ALL)


def render_samples(samples: Iterable[Sample]) -> bytes:
    """The exposition of any catalog samples (families in catalog order, each once)."""
    return _DEFAULT.render(Snapshot(0.0, tuple(samples)))
