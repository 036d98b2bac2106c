"""Dashboards: valid against Grafana's JSON schemas, every panel with a unit, a description,
thresholds and the datasource variable, stable uids, variables that the queries use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gpumetrics.catalog import gpu as g
from gpumetrics.render.dashboards import DASHBOARDS
from gpumetrics.render.dashboards.panels import uid_for
from gpumetrics.render.rules import all_alerts

from .exprs import GRAFANA_BUILTINS, dashboard_files

#: Panel plugins with a schema in shared/grafana-schemas (heatmap has none there).
PANEL_SCHEMAS = ("timeseries", "stat", "gauge")
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")


def _boards(root: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, json.loads(p.read_text())) for p in dashboard_files(root)]


def _flat(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel and row in grid order, a collapsed row's panels right after it."""
    return [q for p in board["panels"] for q in (p, *p.get("panels", ()))]


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in _flat(board) if p["type"] != "row"]


@pytest.fixture(scope="module")
def schemas(repo_root: Path) -> Path:
    path = repo_root.parent / "shared" / "grafana-schemas"
    if not (path / "dashboard.jsonschema.json").is_file():
        pytest.skip("shared/grafana-schemas not present")
    return path


def _validator(schemas: Path, name: str, ref: str | None = None) -> jsonschema.Draft7Validator:
    schema = json.loads((schemas / f"{name}.jsonschema.json").read_text())
    if ref is not None:
        schema = {**schema, "$ref": f"#/definitions/{ref}"}
    return jsonschema.Draft7Validator(schema)


def test_the_four_dashboards_are_committed(repo_root: Path) -> None:
    assert [p.name for p in dashboard_files(repo_root)] == sorted(
        Path(d.path).name for d in DASHBOARDS
    )
    assert {d.title for d in DASHBOARDS} == {
        "Fleet capacity",
        "Inference engine",
        "Efficiency",
        "GPU node",
    }


def test_dashboards_validate_against_the_schemas(repo_root: Path, schemas: Path) -> None:
    dashboard = _validator(schemas, "dashboard")
    query = _validator(schemas, "prometheus")
    checked = 0
    for name, board in _boards(repo_root):
        errors = [e.message for e in dashboard.iter_errors(board)]
        assert errors == [], name
        for panel in _panels(board):
            for target in panel["targets"]:
                assert [e.message for e in query.iter_errors(target)] == [], panel["title"]
            if panel["type"] not in PANEL_SCHEMAS:
                continue
            options = _validator(schemas, panel["type"], "Options")
            assert [e.message for e in options.iter_errors(panel["options"])] == [], panel["title"]
            custom = panel["fieldConfig"]["defaults"].get("custom")
            if custom is not None:
                field = _validator(schemas, panel["type"], "FieldConfig")
                assert [e.message for e in field.iter_errors(custom)] == [], panel["title"]
            checked += 1
    assert checked > 50


def test_schema_validation_catches_a_broken_panel(schemas: Path) -> None:
    options = _validator(schemas, "stat", "Options")
    assert list(options.iter_errors({"graphMode": "area"}))  # required fields missing


def test_every_panel_has_unit_description_thresholds_and_datasource(repo_root: Path) -> None:
    for name, board in _boards(repo_root):
        for panel in _panels(board):
            where = f"{name}: {panel['title']}"
            defaults = panel["fieldConfig"]["defaults"]
            assert defaults.get("unit"), where
            assert len(panel.get("description", "")) > 20, where
            steps = defaults["thresholds"]["steps"]
            assert steps[0]["value"] is None, where
            values = [s["value"] for s in steps[1:]]
            assert values == sorted(values), where
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["targets"], where
            assert [t["refId"] for t in panel["targets"]] == [
                chr(ord("A") + i) for i in range(len(panel["targets"]))
            ], where


def test_uids_are_derived_from_names_and_ids_are_unique(repo_root: Path) -> None:
    boards = dict(_boards(repo_root))
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)
    for definition in DASHBOARDS:
        board = boards[Path(definition.path).name]
        assert board["uid"] == uid_for(board["title"]) == definition.uid
        assert board["uid"].startswith("gpumetrics-")
        assert len(board["uid"]) <= 40
        ids = [p["id"] for p in _flat(board)]
        assert ids == list(range(1, len(ids) + 1))


def test_rows_fill_the_grid(repo_root: Path) -> None:
    """Each row's panels fill whole 24-column lines, and no panel overflows the grid."""
    for name, board in _boards(repo_root):
        widths: list[int] = []
        for panel in _flat(board):
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, f"{name}: {panel['title']}"
            if panel["type"] == "row":
                widths.append(0)
            else:
                widths[-1] += grid["w"]
        assert widths
        assert all(w > 0 and w % 24 == 0 for w in widths), f"{name}: row widths {widths}"


def test_per_link_nvlink_panels_sit_in_a_collapsed_row(repo_root: Path) -> None:
    """The per-link families exist only with serve --nvlink-per-link: their panels are in a
    collapsed row, laid out below it; every other panel uses the per-GPU families."""
    boards = dict(_boards(repo_root))
    node = boards["gpu-node.json"]
    per_link = {spec.name for spec in g.NVLINK_PER_LINK}
    rows = [p for p in node["panels"] if p["type"] == "row" and p.get("collapsed")]
    (row,) = [r for r in rows if "nvlink-per-link" in r["title"]]
    assert row["panels"]
    for panel in row["panels"]:
        assert any(name in t["expr"] for t in panel["targets"] for name in per_link)
        assert panel["gridPos"]["y"] == row["gridPos"]["y"] + 1
    for board in boards.values():
        top = [p for p in board["panels"] if p["type"] != "row"]
        for panel in top:
            exprs = " ".join(t["expr"] for t in panel["targets"])
            assert not any(re.search(rf"\b{name}\b", exprs) for name in per_link), panel["title"]


def test_queries_use_only_defined_variables(repo_root: Path) -> None:
    for name, board in _boards(repo_root):
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert {"datasource", "cluster", "region", "instance"} <= set(variables), name
        assert variables["datasource"]["query"] == "prometheus"
        for var in ("cluster", "region", "instance"):
            assert variables[var]["includeAll"] is True
            assert variables[var]["allValue"] == ".*"
            assert variables[var]["current"]["value"] == "$__all"
        used = set()
        for panel in _panels(board):
            for target in panel["targets"]:
                used.update(_VARIABLE.findall(target["expr"]))
        for variable in variables.values():
            used.update(_VARIABLE.findall(str(variable.get("query", ""))))
        unknown = used - set(variables) - set(GRAFANA_BUILTINS)
        assert unknown == set(), name
        assert {"cluster", "region", "instance"} <= used, name


def test_selectors_filter_by_cluster_and_region(repo_root: Path) -> None:
    for name, board in _boards(repo_root):
        for panel in _panels(board):
            for target in panel["targets"]:
                expr = target["expr"]
                if "{" in expr:
                    assert 'region=~"$region"' in expr, f"{name}: {panel['title']}"


def test_runbooks_point_at_existing_dashboards() -> None:
    titles = {d.title for d in DASHBOARDS}
    assert {a.runbook.dashboard for a in all_alerts()} <= titles


def test_provisioning_files(repo_root: Path) -> None:
    provider = yaml.safe_load((repo_root / "dashboards/provisioning/dashboards.yml").read_text())
    assert provider["apiVersion"] == 1
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    assert entry["options"]["path"].startswith("/")
    sources = yaml.safe_load((repo_root / "dashboards/provisioning/datasources.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    readme = (repo_root / "dashboards" / "README.md").read_text()
    for definition in DASHBOARDS:
        assert f"### {definition.title}" in readme
        assert Path(definition.path).name in readme


def test_heatmaps_bucket_the_series_themselves(repo_root: Path) -> None:
    """Heatmap options have no schema in shared/: check what Grafana needs to draw one."""
    heatmaps = [p for _, b in _boards(repo_root) for p in _panels(b) if p["type"] == "heatmap"]
    assert heatmaps
    for panel in heatmaps:
        options = panel["options"]
        assert options["calculate"] is True
        assert options["calculation"]["yBuckets"] == {"mode": "size", "value": "0.05"}
        assert options["color"]["mode"] == "scheme"
        assert options["color"]["steps"] > 1
