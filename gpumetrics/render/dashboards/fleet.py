"""Fleet capacity: how loaded engines are, per engine, node, cluster and region."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import timeseries

from ...catalog import MetricSpec
from ...catalog import engine as e
from ..rules import DEFAULT_CONFIG
from ..rules import recording as r
from ..rules.recording import help_of
from .panels import (
    LATENCY_PANELS,
    Q,
    Row,
    Steps,
    build_dashboard,
    describe,
    gauge_panel,
    heatmap_panel,
    stat_panel,
    timeseries_panel,
)
from .variables import ENGINE, FLEET, NODE, datasource_variable, engine_variables, fleet_variables

__all__ = ["ANSWERS", "TITLE", "fleet_dashboard"]

TITLE = "Fleet capacity"
ANSWERS = (
    "Is the fleet at capacity, and where? Load score (the larger of batch occupancy and "
    "KV-cache usage) per engine, node, cluster and region; how many engines are at capacity; "
    "queue depth; how KV-cache usage is spread across engines; and latency by cluster."
)

_CAP = DEFAULT_CONFIG.capacity_threshold
_LOAD_STEPS = ((None, "green"), (0.7, "orange"), (_CAP, "red"))
_SHARE_STEPS = ((None, "green"), (0.5, "orange"), (DEFAULT_CONFIG.fleet_capacity_share, "red"))
_LOAD_NOTE = (
    f"Load score = max(batch occupancy, KV usage) over 5m; {_CAP:g} or more counts as at capacity."
)


def _now() -> Row:
    at_cap = f"sum({r.CLUSTER_ENGINES_AT_CAPACITY}{{{FLEET}}})"
    engines = f"sum({r.CLUSTER_ENGINES}{{{FLEET}}})"
    return Row(
        "Capacity now",
        [
            stat_panel(
                "Engines at capacity",
                f"{help_of(r.CLUSTER_ENGINES_AT_CAPACITY)} {_LOAD_NOTE}",
                "none",
                [Q(at_cap, "at capacity")],
                steps=((None, "green"), (1, "orange")),
            ),
            gauge_panel(
                "Share of engines at capacity",
                f"{help_of(r.CLUSTER_ENGINES_AT_CAPACITY)} Over {help_of(r.CLUSTER_ENGINES)} "
                f"The FleetAtCapacity alert fires at {DEFAULT_CONFIG.fleet_capacity_share:g} "
                "while requests queue.",
                "percentunit",
                [Q(f"{at_cap} / {engines}", "share")],
                steps=_SHARE_STEPS,
            ),
            gauge_panel(
                "Fleet load score",
                f"Mean over the selected engines of {help_of(r.ENGINE_LOAD)} {_LOAD_NOTE}",
                "percentunit",
                [Q(f"avg({r.ENGINE_LOAD}{{{ENGINE}}})", "load")],
                steps=_LOAD_STEPS,
            ),
            stat_panel(
                "Requests waiting",
                describe(e.WAITING_REQUESTS, "Summed over the selected engines."),
                "short",
                [Q(f"sum({e.WAITING_REQUESTS.name}{{{ENGINE}}})", "waiting")],
                steps=((None, "green"), (1, "orange"), (100, "red")),
            ),
        ],
    )


def _load_panel(title: str, description: str, *queries: Q) -> timeseries.Panel:
    return timeseries_panel(
        title,
        description,
        "percentunit",
        queries,
        steps=_LOAD_STEPS,
        show_thresholds=True,
        min_value=0.0,
        max_value=1.0,
    )


def _load() -> Row:
    return Row(
        "Load score",
        [
            _load_panel(
                "Load score by cluster and region",
                f"{help_of(r.CLUSTER_LOAD)} {help_of(r.REGION_LOAD)}",
                Q(f"{r.CLUSTER_LOAD}{{{FLEET}}}", "{{cluster}} {{region}}"),
                Q(f'{r.REGION_LOAD}{{region=~"$region"}}', "region {{region}}"),
            ),
            _load_panel(
                "Load score by node",
                help_of(r.INSTANCE_LOAD),
                Q(f"{r.INSTANCE_LOAD}{{{NODE}}}", "{{instance}}"),
            ),
            _load_panel(
                "Load score by engine",
                f"{help_of(r.ENGINE_LOAD)} {_LOAD_NOTE}",
                Q(f"{r.ENGINE_LOAD}{{{ENGINE}}}", "{{engine}} on {{instance}}"),
            ),
            timeseries_panel(
                "Engines at capacity by cluster",
                help_of(r.CLUSTER_ENGINES_AT_CAPACITY),
                "none",
                [
                    Q(f"{r.CLUSTER_ENGINES_AT_CAPACITY}{{{FLEET}}}", "at capacity {{cluster}}"),
                    Q(f"{r.CLUSTER_ENGINES}{{{FLEET}}}", "engines {{cluster}}"),
                ],
                steps=((None, "green"), (1, "orange")),
                min_value=0.0,
            ),
        ],
    )


def _queue_and_kv() -> Row:
    return Row(
        "Queue and KV cache",
        [
            timeseries_panel(
                "Queue depth by engine",
                describe(e.WAITING_REQUESTS),
                "short",
                [Q(f"{e.WAITING_REQUESTS.name}{{{ENGINE}}}", "{{engine}} on {{instance}}")],
                steps=((None, "green"), (1, "orange"), (100, "red")),
                axis_label="requests",
                min_value=0.0,
            ),
            heatmap_panel(
                "KV-cache usage across engines",
                describe(
                    e.KV_USAGE,
                    "Each column counts the selected engines per 5% band of KV usage; a mass "
                    "near the top means the fleet is KV-bound.",
                ),
                "percentunit",
                [Q(f"{e.KV_USAGE.name}{{{ENGINE}}}", "{{engine}} on {{instance}}")],
                bucket_size="0.05",
            ),
            timeseries_panel(
                "Which constraint binds: batch occupancy vs KV usage",
                "Mean over the selected engines of the two parts of the load score: batch "
                f"occupancy ({r.BATCH_OCCUPANCY_SEQUENCES['5m']}) and KV-cache usage "
                f"({r.KV_USAGE_AVG}). The higher line is what runs out first.",
                "percentunit",
                [
                    Q(f"avg({r.BATCH_OCCUPANCY_SEQUENCES['5m']}{{{ENGINE}}})", "batch occupancy"),
                    Q(f"avg({r.KV_USAGE_AVG}{{{ENGINE}}})", "KV usage"),
                ],
                steps=_LOAD_STEPS,
                show_thresholds=True,
                min_value=0.0,
                max_value=1.0,
            ),
            timeseries_panel(
                "Queued requests by cluster",
                help_of(r.CLUSTER_WAITING),
                "short",
                [Q(f"{r.CLUSTER_WAITING}{{{FLEET}}}", "{{cluster}} {{region}}")],
                steps=((None, "green"), (1, "orange"), (100, "red")),
                axis_label="requests",
                min_value=0.0,
            ),
        ],
    )


def _fleet_quantiles(title: str, spec: MetricSpec, steps: Steps) -> timeseries.Panel:
    buckets = f"{r.FLEET_BUCKETS[spec.name]}{{{FLEET}}}"
    return timeseries_panel(
        title,
        describe(
            spec,
            f"p50 and p99 by cluster and region from {help_of(r.FLEET_BUCKETS[spec.name])} "
            "Engines keep their own buckets, so a cluster's quantile only uses the bounds "
            "all its engines share: coarser than one engine's, never biased by a bound only "
            "some engines have.",
        ),
        "s",
        [
            Q(
                f"histogram_quantile({q}, {buckets})",
                f"p{round(q * 100)} {{{{cluster}}}} {{{{region}}}}",
            )
            for q in (0.5, 0.99)
        ],
        steps=steps,
        show_thresholds=True,
        min_value=0.0,
        width=8,
    )


def _latency() -> Row:
    return Row(
        "Latency by cluster",
        [_fleet_quantiles(title, spec, steps) for title, spec, steps in LATENCY_PANELS],
    )


def fleet_dashboard() -> db.Dashboard:
    return build_dashboard(
        TITLE,
        ANSWERS,
        [datasource_variable(), *fleet_variables(), *engine_variables()],
        [_now(), _load(), _queue_and_kv(), _latency()],
    )
