"""THE metric catalog: every metric gpumetrics exports, once.

Prometheus families, OTel instruments, dashboards, rules, METRICS.md and deployment snippets
are generated from `ALL` or tested against it. Entries live by area in `gpu`, `mig`,
`network`, `engine` and `health`, and the gauges `serve` derives over a window in `derived`;
refer to them as objects (`catalog.gpu.GPU_POWER`), never by a hand-typed name.
"""

from __future__ import annotations

from types import MappingProxyType

from . import derived, engine, gpu, health, mig, network, pods
from .spec import Group, MetricSpec, MetricType, Source, Stability, naming_problems

__all__ = [
    "ALL",
    "BY_NAME",
    "Group",
    "MetricSpec",
    "MetricType",
    "Source",
    "Stability",
    "derived",
    "engine",
    "get",
    "gpu",
    "health",
    "mig",
    "naming_problems",
    "network",
    "pods",
]

ALL: tuple[MetricSpec, ...] = (
    *gpu.ALL,
    *mig.ALL,
    *network.ALL,
    *engine.ALL,
    *health.ALL,
    *derived.ALL,
    *pods.ALL,
)

BY_NAME = MappingProxyType({spec.name: spec for spec in ALL})


def get(name: str) -> MetricSpec:
    """The entry named `name` (full exposition name); KeyError names close matches."""
    try:
        return BY_NAME[name]
    except KeyError:
        stem = name.removeprefix("gpumetrics_").split("_")[0]
        close = [n for n in BY_NAME if stem and stem in n][:5]
        raise KeyError(f"{name!r} is not in the catalog; close: {close}") from None
