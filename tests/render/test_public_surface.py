"""The render modules' public names exist (DESIGN.md §6.9: `__all__` on public modules)."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "gpumetrics.render.rules",
    "gpumetrics.render.rules.model",
    "gpumetrics.render.rules.promql",
    "gpumetrics.render.rules.recording",
    "gpumetrics.render.rules.alerts_engine",
    "gpumetrics.render.rules.alerts_node",
    "gpumetrics.render.rules.files",
    "gpumetrics.render.runbooks",
    "gpumetrics.render.dashboards",
    "gpumetrics.render.dashboards.panels",
    "gpumetrics.render.dashboards.variables",
    "gpumetrics.render.dashboards.fleet",
    "gpumetrics.render.dashboards.engine",
    "gpumetrics.render.dashboards.efficiency",
    "gpumetrics.render.dashboards.node",
    "gpumetrics.render.dashboards.provisioning",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} has no __all__"
    assert [attr for attr in exported if not hasattr(module, attr)] == []
