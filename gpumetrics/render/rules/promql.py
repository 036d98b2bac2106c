"""Small PromQL builders, so that every metric name in an expression comes from the catalog.

Label conventions the expressions rely on:

- engine series and `gpumetrics_engine_gpu_info` come from the same scrape target (the
  sidecar), so engine series join the per-GPU peaks `on (instance, job, gpu_uuid)` and each
  other `on (instance, job, engine, model)`;
- `cluster` and `region` are labels the user attaches (target labels, or external labels seen
  through Thanos/Mimir); aggregations use `without (...)` so that such labels survive, and the
  fleet roll-ups group `by (cluster, region)`, which still works when they are absent.
"""

from __future__ import annotations

from ...catalog import MetricSpec
from ...catalog.engine import ENGINE_LABELS
from ...catalog.gpu import GPU_LABELS

__all__ = [
    "ENGINE_JOIN",
    "FLEET_LABELS",
    "GPU_JOIN",
    "GPU_LABELS",
    "avg_over",
    "by",
    "increase",
    "rate",
    "sel",
    "without",
]

#: Labels that identify one engine across its series (plus the scrape target).
ENGINE_JOIN = ("instance", "job", *ENGINE_LABELS)
#: Labels that identify one GPU across series from one target.
GPU_JOIN = ("instance", "job", "gpu_uuid")
#: Fleet dimensions the user attaches; absent labels group as one fleet.
FLEET_LABELS = ("cluster", "region")


def _name(metric: MetricSpec | str) -> str:
    return metric.name if isinstance(metric, MetricSpec) else metric


def sel(metric: MetricSpec | str, matchers: str = "") -> str:
    """`name{matchers}`: a catalog entry or a recording-rule name, with optional matchers."""
    return f"{_name(metric)}{{{matchers}}}" if matchers else _name(metric)


def rate(metric: MetricSpec | str, window: str, matchers: str = "") -> str:
    return f"rate({sel(metric, matchers)}[{window}])"


def increase(metric: MetricSpec | str, window: str, matchers: str = "") -> str:
    return f"increase({sel(metric, matchers)}[{window}])"


def avg_over(metric: MetricSpec | str, window: str, matchers: str = "") -> str:
    return f"avg_over_time({sel(metric, matchers)}[{window}])"


def by(*labels: str) -> str:
    return f"by ({', '.join(labels)})"


def without(*labels: str) -> str:
    return f"without ({', '.join(labels)})"
