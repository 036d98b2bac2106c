"""Every PromQL expression in dashboards, rules and runbooks parses (promtool), and every metric
name in them is in the catalog or is one of our recording rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumetrics import catalog
from gpumetrics.catalog import MetricType

from .exprs import (
    dashboard_exprs,
    metric_names,
    promtool_parse,
    recorded_names,
    rule_exprs,
    runbook_exprs,
    substitute,
)

#: Series Prometheus itself makes for every target.
PROMETHEUS_BUILTINS = frozenset({"up", "scrape_duration_seconds"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _all_exprs(root: Path) -> dict[str, str]:
    return {**dashboard_exprs(root), **rule_exprs(root), **runbook_exprs(root)}


def _known_names(root: Path) -> set[str]:
    names = set(catalog.BY_NAME) | recorded_names(root) | PROMETHEUS_BUILTINS
    for spec in catalog.ALL:
        if spec.type is MetricType.HISTOGRAM:
            names.update(spec.name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names


def test_every_expression_parses(promtool: str, repo_root: Path, tmp_path: Path) -> None:
    exprs = _all_exprs(repo_root)
    assert len(dashboard_exprs(repo_root)) > 80
    assert len(runbook_exprs(repo_root)) > 30
    result = promtool_parse(promtool, exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_the_parse_check_rejects_a_broken_expression(promtool: str, tmp_path: Path) -> None:
    good = {"ok": "rate(gpumetrics_gpu_energy_joules_total[5m])"}
    assert promtool_parse(promtool, good, tmp_path).returncode == 0
    bad = {**good, "bad": "sum by (gpu (rate(gpumetrics_gpu_energy_joules_total[5m]))"}
    assert promtool_parse(promtool, bad, tmp_path).returncode != 0


def test_template_variables_are_substituted() -> None:
    expr = 'rate(x{cluster=~"$cluster", dtype="$dtype"}[$__rate_interval]) * ${gpu}'
    assert substitute(expr) == 'rate(x{cluster=~".*", dtype="bf16"}[5m]) * .*'


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, engine) (rate(a_seconds_bucket{engine=~"$e"}'
        "[5m]))) / on (instance, job) group_left (dtype) gpumetrics:x:ratio offset 5m "
        'and label_replace(b_total, "k", "v", "", "") > bool 1e-09 or vector(0)'
    )
    assert metric_names(expr) == {"a_seconds_bucket", "gpumetrics:x:ratio", "b_total"}


def test_every_metric_name_is_in_the_catalog_or_a_recording_rule(repo_root: Path) -> None:
    known = _known_names(repo_root)
    unknown = {
        f"{where}: {name}"
        for where, expr in _all_exprs(repo_root).items()
        for name in metric_names(expr)
        if name not in known
    }
    assert unknown == set()


def test_dashboards_and_alerts_use_recording_rules(repo_root: Path) -> None:
    recorded = recorded_names(repo_root)
    used = set().union(*(metric_names(e) for e in dashboard_exprs(repo_root).values()))
    used_by_alerts = set().union(*(metric_names(e) for e in rule_exprs(repo_root).values()))
    assert len(used & recorded) >= 25
    unused = recorded - used - used_by_alerts
    assert unused == set(), f"recording rules nothing reads: {sorted(unused)}"


@pytest.mark.parametrize("op", ["rate(", "increase("])
def test_dashboards_leave_ratios_of_counters_to_recording_rules(repo_root: Path, op: str) -> None:
    offenders = [
        where for where, expr in dashboard_exprs(repo_root).items() if "/" in expr and op in expr
    ]
    assert offenders == []
