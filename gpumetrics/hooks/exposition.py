"""Catalog samples as the classic Prometheus text exposition format (0.0.4).

Hand-written on purpose: `gpumetrics.hooks` is imported by inference engines and must stay
standard-library only (DESIGN.md §2), so prometheus_client's `generate_latest` is not
available here. The output is what prometheus_client would write for the same families —
HELP/TYPE once per family, counters under their `_total` name, histograms as cumulative
`_bucket{le=...}` series ending in `+Inf`, then `_sum` and `_count`, info metrics as gauges of
value 1 — and `promtool check metrics` accepts it (tests/hooks check both).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .. import catalog
from ..catalog.spec import MetricType
from ..model import HistogramValue, Sample

__all__ = [
    "CONTENT_TYPE",
    "escape_help",
    "escape_label_value",
    "format_value",
    "render_samples",
]

#: Content-Type of the classic text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The classic format has no "info" type: info metrics are gauges named *_info (as in
# prometheus_client's classic output).
_TYPE = {
    MetricType.COUNTER: "counter",
    MetricType.GAUGE: "gauge",
    MetricType.HISTOGRAM: "histogram",
    MetricType.INFO: "gauge",
}


def escape_label_value(value: str) -> str:
    """Escape a label value: backslash, double quote and line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """Escape HELP text: backslash and line feed."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it: ints exact, floats by repr, +Inf/-Inf/NaN."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _le(bound: float) -> str:
    # Same `le` strings as gpumetrics.export.prometheus (repr of the float: "1.0", "0.005").
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    pairs = [f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _histogram_lines(name: str, names: tuple[str, ...], sample: Sample) -> list[str]:
    value = sample.value
    if not isinstance(value, HistogramValue):
        raise TypeError(f"{name} is a histogram; got a {type(value).__name__} sample")
    bounds = [*value.bounds, math.inf]
    counts = [*value.counts, value.count]
    lines = []
    for bound, count in zip(bounds, counts, strict=True):
        labels = _labels(names, sample.labels, 'le="' + _le(bound) + '"')
        lines.append(f"{name}_bucket{labels} {format_value(count)}")
    plain = _labels(names, sample.labels)
    lines.append(f"{name}_sum{plain} {format_value(value.sum)}")
    lines.append(f"{name}_count{plain} {format_value(value.count)}")
    return lines


def render_samples(samples: Iterable[Sample]) -> bytes:
    """The text exposition of `samples`, UTF-8 encoded.

    Samples are grouped into families by metric name in order of first appearance, so
    samples of several engines render as one family each. Every name must be in the catalog
    (KeyError otherwise); HELP and TYPE come from its entry.
    """
    families: dict[str, list[Sample]] = {}
    for sample in samples:
        families.setdefault(sample.metric, []).append(sample)
    lines: list[str] = []
    for name, group in families.items():
        spec = catalog.get(name)
        lines.append(f"# HELP {name} {escape_help(spec.help)}")
        lines.append(f"# TYPE {name} {_TYPE[spec.type]}")
        for sample in group:
            if spec.type is MetricType.HISTOGRAM:
                lines += _histogram_lines(name, spec.labels, sample)
            elif isinstance(sample.value, HistogramValue):
                raise TypeError(f"{name} is a {spec.type}; got a histogram sample")
            else:
                lines.append(
                    f"{name}{_labels(spec.labels, sample.labels)} {format_value(sample.value)}"
                )
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
