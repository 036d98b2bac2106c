"""The public surface imports, and every name in each public module's __all__ exists."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = [
    "gpumetrics",
    "gpumetrics.catalog",
    "gpumetrics.samples",
    "gpumetrics.units",
    "gpumetrics.errors",
    "gpumetrics.extras",
    "gpumetrics.hardware",
    "gpumetrics.costmodel",
    "gpumetrics.derive",
    "gpumetrics.sources",
    "gpumetrics.export.prometheus",
    "gpumetrics.render",
    "gpumetrics.profile.planner",
    "gpumetrics.hooks",
    "gpumetrics.testing",
    "gpumetrics.testing.sample_values",
    "gpumetrics.pipeline",
    "gpumetrics.promtext",
    "gpumetrics.export.otel",
    "gpumetrics.config",
    "gpumetrics.engine_config",
    "gpumetrics.settings",
    "gpumetrics.profile.session",
    "gpumetrics.profile.analysis",
    "gpumetrics.profile.attach",
    "gpumetrics.profile.report",
    "gpumetrics.profile.schema",
    "gpumetrics.kvsize",
    "gpumetrics.view",
]


@pytest.mark.parametrize("name", PUBLIC)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} has no __all__"
    missing = [attr for attr in exported if not hasattr(module, attr)]
    assert missing == []
