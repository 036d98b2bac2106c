"""Template variables and the label selectors that use them.

`cluster` and `region` are labels the user attaches (target labels, or external labels seen
through Thanos/Mimir). Every multi-value variable defaults to All = `.*`, which also matches
series without the label, so the dashboards work before anyone attaches them.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from ...catalog import MetricSpec
from ...catalog import engine as e
from ...catalog import gpu as g
from ...catalog import health as x
from ...catalog import pods as p
from .panels import DATASOURCE

__all__ = [
    "ENGINE",
    "FLEET",
    "GPU",
    "NODE",
    "POD",
    "POD_ANY_NODE",
    "RATE_INTERVAL",
    "datasource_variable",
    "dtype_variable",
    "engine_variables",
    "fleet_variables",
    "gpu_variables",
    "pod_variables",
    "with_dtype",
]

#: Matchers for the fleet filters, and for node, GPU and engine scopes below it.
FLEET = 'cluster=~"$cluster", region=~"$region"'
NODE = f'{FLEET}, instance=~"$instance"'
GPU = f'{NODE}, gpu=~"$gpu"'
ENGINE = f'{NODE}, engine=~"$engine", model=~"$model"'
POD = f'{NODE}, namespace=~"$namespace", pod=~"$pod"'
#: A pod's series from any target (engines scraped directly carry their own instance).
POD_ANY_NODE = f'{FLEET}, namespace=~"$namespace", pod=~"$pod"'
#: The range of every rate()/increase() on a time-series panel: Grafana's own choice (at least
#: four scrape intervals).
RATE_INTERVAL = "$__rate_interval"

_ALL = dm.VariableOption(text="All", value="$__all", selected=True)


def with_dtype(matchers: str) -> str:
    """`matchers` plus the peak dtype chosen on the Efficiency dashboard."""
    return f'{matchers}, dtype="$dtype"'


def datasource_variable() -> db.DatasourceVariable:
    return db.DatasourceVariable("datasource").label("Data source").type("prometheus")


def _query(
    name: str, label: str, metric: MetricSpec, matchers: str, description: str
) -> db.QueryVariable:
    selector = f"{metric.name}{{{matchers}}}" if matchers else metric.name
    return (
        db.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(f"label_values({selector}, {name})")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.NATURAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(_ALL)
    )


def fleet_variables() -> list[db.QueryVariable]:
    """cluster, region, instance: from the exporter's build info, present on every node."""
    return [
        _query("cluster", "Cluster", x.BUILD_INFO, "", "Cluster label you attach to targets."),
        _query("region", "Region", x.BUILD_INFO, 'cluster=~"$cluster"', "Region label you attach."),
        _query("instance", "Node", x.BUILD_INFO, FLEET, "Scrape target (one exporter a node)."),
    ]


def gpu_variables() -> list[db.QueryVariable]:
    return [_query("gpu", "GPU", g.GPU_INFO, NODE, "GPU index (MIG devices: 0/mig-N).")]


def engine_variables() -> list[db.QueryVariable]:
    return [
        _query("engine", "Engine", e.ENGINE_INFO, NODE, "Engine instance name."),
        _query("model", "Model", e.ENGINE_INFO, f'{NODE}, engine=~"$engine"', "Served model."),
    ]


def pod_variables() -> list[db.QueryVariable]:
    """namespace and pod, from the join metric (`serve --pod-attribution`); with the cgroup
    fallback `pod` is the pod UID and `namespace` is empty."""
    return [
        _query("namespace", "Namespace", p.GPU_POD_INFO, NODE, "Namespace of a GPU's pod."),
        _query(
            "pod",
            "Pod",
            p.GPU_POD_INFO,
            f'{NODE}, namespace=~"$namespace"',
            "Pod holding a GPU (its UID with the cgroup fallback).",
        ),
    ]


def dtype_variable() -> db.QueryVariable:
    """The dtype whose dense peak MFU and the ridge point are measured against (one value)."""
    return (
        db.QueryVariable("dtype")
        .label("Peak dtype")
        .description("Dtype of the dense peak FLOP/s used for MFU and the ridge point.")
        .datasource(DATASOURCE)
        .query(f"label_values({g.PEAK_FLOPS.name}, dtype)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.NATURAL_ASC)
        .multi(False)
        .include_all(False)
        .current(dm.VariableOption(text="bf16", value="bf16", selected=True))
    )
