"""METRICS.md: the catalog as a reference page, grouped by area."""

from __future__ import annotations

from collections.abc import Iterable

from ..catalog import ALL, Group, MetricSpec, MetricType, Source

__all__ = ["render_metrics_md"]

_HEADER = """\
# Metrics

Generated from `gpumetrics/catalog/` by `gpumetrics render`; do not edit by hand (a test
fails when this file and the catalog drift apart).

Conventions: base units in the name (`_bytes`, `_seconds`, `_joules`, `_watts`, `_ratio` for
0-1), `_total` on counters only. The counters are the source of truth; ratios such as the
prefix-cache hit ratio, arithmetic intensity, MFU and MBU are computed where the window is
known: by the recording rules (`rate(a) / rate(b)`, alerts/), and by `serve` itself over
`--derived-window` (default 5m, the `window` label) for readers without those rules (last
section; the same definitions, held to the rules by a test with a real Prometheus). Labels
mean the same everywhere: `gpu` (index), `gpu_uuid`, `gpu_model`, `link`, `ib_device`,
`port`, `engine`, `model`, `phase`, `window`. Host identity comes from Prometheus'
`instance` label.

Engine histograms keep the engine's own buckets. The buckets listed below are the ones our
hooks use; an engine read through the bridge (vLLM, SGLang) keeps its own `le` bounds, since
re-bucketing cannot be exact (vLLM's TTFT has 22 bounds from 1 ms, SGLang's 18 from 100 ms;
vLLM's token histograms end at the model's `max_model_len`). Each series has one set of
bounds, so `histogram_quantile` over one engine is right. Summing engines with different
bounds is not: `sum by (le)` then adds, at a bound only some engines have, only those
engines' counts, so the cumulative count there is understated (it can even fall below the
bound before) and the quantile is wrong.
The recording rules `gpumetrics:fleet_<histogram>_bucket:rate5m` sum per cluster and region on
the bounds every engine there shares (exact for cumulative buckets, as the bridge does when it
merges data-parallel ranks), and the dashboards take quantiles per engine or from those rules.

"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(spec: MetricSpec) -> str:
    labels = ", ".join(f"`{label}`" for label in spec.labels) or "-"
    kind = spec.type.value
    if spec.type is MetricType.HISTOGRAM:
        kind += f" ({len(spec.buckets)} buckets, {spec.buckets[0]:g}-{spec.buckets[-1]:g}"
        kind += "; engines keep theirs)" if spec.source is Source.ENGINE else ")"
    stability = "" if spec.stability.value == "stable" else f" *({spec.stability.value})*"
    return (
        f"| `{spec.name}`{stability} | {kind} | {spec.unit or '-'} | {labels} | "
        f"`{spec.otel_name}` ({spec.otel_unit}) | {spec.source.value} | {_cell(spec.help)} |"
    )


def render_metrics_md(specs: Iterable[MetricSpec] = ALL) -> str:
    """The whole page as text."""
    specs = tuple(specs)
    parts = [_HEADER, f"{len(specs)} metric families.\n"]
    for group in Group:
        members = [s for s in specs if s.group is group]
        if not members:
            continue
        parts.append(f"\n## {group.value}\n\n")
        parts.append("| name | type | unit | labels | OpenTelemetry | source | meaning |\n")
        parts.append("|---|---|---|---|---|---|---|\n")
        parts.extend(_row(spec) + "\n" for spec in members)
    return "".join(parts)
