"""The generated parts of exporters/ (chart rule files, metric list): listed in ARTIFACTS, equal
to what the generators render, and caught by `gpumetrics render --check` when edited."""

from __future__ import annotations

from pathlib import Path

from gpumetrics import catalog
from gpumetrics.render import ARTIFACTS, check, write
from gpumetrics.render.deployables import CHART_METRICS_PATH, CHART_RULE_PATHS, render_metric_list
from gpumetrics.render.rules import ALERTS_PATH, RECORDING_PATH

from .tools import REPO


def test_exporter_files_are_artifacts_and_committed_up_to_date() -> None:
    paths = {a.path for a in ARTIFACTS}
    assert {*CHART_RULE_PATHS, CHART_METRICS_PATH} <= paths
    stale = [p for p in check(REPO) if p.startswith("exporters/")]
    assert stale == [], "run `gpumetrics render`"


def test_chart_rule_files_are_the_alerts_files() -> None:
    for copy, source in zip(CHART_RULE_PATHS, (RECORDING_PATH, ALERTS_PATH), strict=True):
        assert Path(copy).name == Path(source).name
        assert (REPO / copy).read_text() == (REPO / source).read_text()


def test_metric_list_is_the_catalog() -> None:
    lines = (REPO / CHART_METRICS_PATH).read_text().splitlines()
    names = [line for line in lines if line and not line.startswith("#")]
    assert names == sorted(spec.name for spec in catalog.ALL)
    assert render_metric_list(catalog.ALL[:2]).count("\n") == 2 + sum(
        1 for line in lines if line.startswith("#")
    )


def test_check_reports_hand_edits_under_exporters(tmp_path: Path) -> None:
    write(tmp_path)
    assert check(tmp_path) == []
    rules = tmp_path / CHART_RULE_PATHS[1]
    rules.write_text(rules.read_text().replace("severity: critical", "severity: info", 1))
    (tmp_path / CHART_METRICS_PATH).unlink()
    assert check(tmp_path) == [CHART_RULE_PATHS[1], CHART_METRICS_PATH]


def test_the_chart_reads_the_generated_paths() -> None:
    """The templates name exactly the generated files (renaming an artifact breaks this)."""
    chart = Path(CHART_METRICS_PATH).parent.parent
    rule_template = (REPO / chart / "templates" / "prometheusrule.yaml").read_text()
    helpers = (REPO / chart / "templates" / "_helpers.tpl").read_text()
    for path in CHART_RULE_PATHS:
        assert f'"{Path(path).relative_to(chart).as_posix()}"' in rule_template
    assert f'"{Path(CHART_METRICS_PATH).relative_to(chart).as_posix()}"' in helpers
