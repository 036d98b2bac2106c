"""Grafana dashboards, built with grafana-foundation-sdk from the catalog and the rule names.

Each dashboard lives in its own module; `DASHBOARDS` lists them with the file each renders to.
`provisioning` renders the Grafana provisioning YAML and dashboards/README.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard as db

from . import efficiency, engine, fleet, node
from .panels import encode, uid_for

__all__ = ["DASHBOARDS", "DashboardDef", "render_dashboard"]


@dataclass(frozen=True, slots=True)
class DashboardDef:
    """One dashboard: its file under dashboards/, title, what it answers, and its builder."""

    path: str
    title: str
    answers: str
    build: Callable[[], db.Dashboard]

    @property
    def uid(self) -> str:
        return uid_for(self.title)


DASHBOARDS: tuple[DashboardDef, ...] = (
    DashboardDef(
        "dashboards/fleet-capacity.json", fleet.TITLE, fleet.ANSWERS, fleet.fleet_dashboard
    ),
    DashboardDef(
        "dashboards/inference-engine.json", engine.TITLE, engine.ANSWERS, engine.engine_dashboard
    ),
    DashboardDef(
        "dashboards/efficiency.json",
        efficiency.TITLE,
        efficiency.ANSWERS,
        efficiency.efficiency_dashboard,
    ),
    DashboardDef("dashboards/gpu-node.json", node.TITLE, node.ANSWERS, node.node_dashboard),
)


def render_dashboard(definition: DashboardDef) -> str:
    """The dashboard's JSON text (sorted keys, two-space indent, trailing newline)."""
    return encode(definition.build())
