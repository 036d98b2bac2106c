"""The Helm chart's values schema, Grafana dashboards ConfigMap, runbook links and ServiceMonitor
options: rendered by Helm's own engine (helm-python-sdk, which applies values.schema.json as
`helm template` does), the schema also checked on its own with jsonschema, the objects with
kubernetes-validate and the rules with promtool.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from gpumetrics.render.dashboards import DASHBOARDS
from gpumetrics.render.rules.files import all_alerts

from .tools import CHART, REPO, load_yaml, require_module, run

Docs = list[dict[str, Any]]
KUBERNETES = "1.30.0"
SCHEMA = CHART / "values.schema.json"


@pytest.fixture(scope="module")
def helm() -> ModuleType:
    return require_module("helm_python", "helm-python-sdk")


@pytest.fixture(scope="module")
def jsonschema() -> ModuleType:
    return require_module("jsonschema", "jsonschema")


@pytest.fixture(scope="module")
def render(helm: ModuleType) -> Callable[..., Docs]:
    """Render the chart with `values` (release "gm", namespace "monitoring"): every object."""

    def rendered(values: dict[str, Any] | None = None) -> Docs:
        with helm.Chart.load(CHART) as chart:
            manifests: dict[str, str] = chart.render(values, name="gm", namespace="monitoring")
        return [
            doc
            for path, text in manifests.items()
            if path.endswith(".yaml")
            for doc in yaml.safe_load_all(text)
            if doc
        ]

    return rendered


def _one(docs: Docs, kind: str, name: str | None = None) -> dict[str, Any]:
    (doc,) = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    return doc


def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text())
    return loaded


# --- values.schema.json -----------------------------------------------------------------


def test_the_schema_is_a_valid_draft7_schema_and_values_yaml_meets_it(
    jsonschema: ModuleType,
) -> None:
    jsonschema.Draft7Validator.check_schema(_schema())
    jsonschema.Draft7Validator(_schema()).validate(load_yaml(CHART / "values.yaml"))


def _undescribed(values: object, schema: dict[str, Any], at: str) -> list[str]:
    """Keys of `values` the schema does not describe, where it describes its keys at all."""
    if not isinstance(values, dict) or "properties" not in schema:
        return []
    properties: dict[str, Any] = schema["properties"]
    missing = []
    for key, value in values.items():
        if key not in properties:
            missing.append(f"{at}{key}")
        else:
            missing += _undescribed(value, properties[key], f"{at}{key}.")
    return missing


def test_every_key_of_values_yaml_is_in_the_schema() -> None:
    assert _undescribed(load_yaml(CHART / "values.yaml"), _schema(), "") == []


BAD_VALUES = [
    ({"port": "9835"}, "/port"),
    ({"port": 70000}, "/port"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"serviceMonitor": {"interval": "15 seconds"}}, "/serviceMonitor/interval"),
    ({"serviceMonitor": {"honorLabel": True}}, "/serviceMonitor"),
    ({"serviceMonitor": {"honorLabels": "yes"}}, "/serviceMonitor/honorLabels"),
    ({"prometheusRule": {"runbookBaseUrl": "docs/runbooks/"}}, "/prometheusRule/runbookBaseUrl"),
    ({"grafanaDashboards": {"labelValue": 1}}, "/grafanaDashboards/labelValue"),
    ({"config": {"serve": {"log_level": "loud"}}}, "/config/serve/log_level"),
    ({"config": {"engines": [{"name": "e", "url": "ftp://x/"}]}}, "/config/engines/0/url"),
]


@pytest.mark.parametrize(("values", "where"), BAD_VALUES, ids=str)
def test_bad_values_are_rejected_by_the_schema_and_by_helm(
    jsonschema: ModuleType,
    helm: ModuleType,
    render: Callable[..., Docs],
    values: dict[str, Any],
    where: str,
) -> None:
    merged = _merge(load_yaml(CHART / "values.yaml"), values)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(_schema()).validate(merged)
    with pytest.raises(helm.HelmValuesError, match=f"at '{where}"):
        render(values)


def _merge(base: Any, override: Any) -> Any:
    """`override` over `base`, maps merged key by key (as Helm merges -f values)."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(base.get(key), value)
    return merged


def test_helm_lint_applies_the_schema(helm: ModuleType) -> None:
    good = helm.lint(CHART, strict=True, kube_version=f"v{KUBERNETES}")
    assert good["errors"] == [], good
    bad = helm.lint(CHART, {"port": "not-a-port"}, strict=True, kube_version=f"v{KUBERNETES}")
    assert bad["errors"], bad
    assert "/port" in json.dumps(bad)


# --- Grafana dashboards ConfigMap ---------------------------------------------------------


def test_no_dashboards_config_map_by_default(render: Callable[..., Docs]) -> None:
    assert [d["metadata"]["name"] for d in render() if d["kind"] == "ConfigMap"] == [
        "gm-gpumetrics"
    ]


def test_dashboards_config_map_carries_the_sidecar_label_and_every_dashboard(
    render: Callable[..., Docs],
) -> None:
    docs = render(
        {"grafanaDashboards": {"enabled": True, "annotations": {"grafana_folder": "GPU"}}}
    )
    config_map = _one(docs, "ConfigMap", "gm-gpumetrics-dashboards")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "GPU"}
    assert config_map["metadata"]["namespace"] == "monitoring"
    expected = {Path(d.path).name: (REPO / d.path).read_text() for d in DASHBOARDS}
    assert config_map["data"].keys() == expected.keys()
    for name, text in expected.items():
        assert config_map["data"][name] == text.rstrip("\n"), name
        assert json.loads(config_map["data"][name])["uid"] == json.loads(text)["uid"]
    validate = require_module("kubernetes_validate", "kubernetes-validate")
    validate.validate(config_map, KUBERNETES, strict=True)


def test_chart_with_every_option_of_this_file_on_lints_clean(helm: ModuleType) -> None:
    values = {
        "grafanaDashboards": {"enabled": True},
        "prometheusRule": {"runbookBaseUrl": "https://wiki.example/runbooks/"},
        "serviceMonitor": {"honorLabels": True},
    }
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBERNETES}")
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_dashboards_config_map_fits_a_client_side_apply(render: Callable[..., Docs]) -> None:
    """`kubectl apply` (client-side) copies the object into an annotation, which Kubernetes
    caps at 256 KiB in all; the ConfigMap itself may hold 1 MiB."""
    docs = render({"grafanaDashboards": {"enabled": True}})
    config_map = _one(docs, "ConfigMap", "gm-gpumetrics-dashboards")
    assert len(json.dumps(config_map).encode()) < 256 * 1024


def test_dashboards_label_and_namespace_follow_the_values(render: Callable[..., Docs]) -> None:
    docs = render(
        {
            "grafanaDashboards": {
                "enabled": True,
                "label": "example.com/dashboard",
                "labelValue": "gpu",
                "namespace": "grafana",
            }
        }
    )
    config_map = _one(docs, "ConfigMap", "gm-gpumetrics-dashboards")
    assert config_map["metadata"]["labels"]["example.com/dashboard"] == "gpu"
    assert "grafana_dashboard" not in config_map["metadata"]["labels"]
    assert config_map["metadata"]["namespace"] == "grafana"


# --- runbook links, ServiceMonitor --------------------------------------------------------


def _alert_annotations(docs: Docs) -> dict[str, dict[str, str]]:
    groups = _one(docs, "PrometheusRule")["spec"]["groups"]
    return {r["alert"]: r["annotations"] for g in groups for r in g["rules"] if "alert" in r}


@pytest.mark.parametrize(
    "base", ["https://wiki.example/gpu/runbooks", "https://wiki.example/gpu/runbooks/"]
)
def test_runbook_base_url_makes_every_alert_link_absolute(
    render: Callable[..., Docs], promtool: str, tmp_path: Path, base: str
) -> None:
    docs = render({"prometheusRule": {"runbookBaseUrl": base}})
    annotations = _alert_annotations(docs)
    assert sorted(annotations) == sorted(a.name for a in all_alerts())
    for alert, notes in annotations.items():
        assert notes["runbook_url"] == f"https://wiki.example/gpu/runbooks/{alert}.md"
    default = _alert_annotations(render())
    assert all(n["runbook_url"] == f"docs/runbooks/{a}.md" for a, n in default.items())
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": _one(docs, "PrometheusRule")["spec"]["groups"]}))
    result = run([promtool, "check", "rules", str(rules)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("honor", [False, True])
def test_service_monitor_honor_labels(render: Callable[..., Docs], honor: bool) -> None:
    values = {"serviceMonitor": {"honorLabels": True}} if honor else None
    (endpoint,) = _one(render(values), "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["honorLabels"] is honor
