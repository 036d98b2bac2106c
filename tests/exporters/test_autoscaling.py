"""examples/autoscaling/: the KEDA ScaledObject, the prometheus-adapter rules and the HPA.

The ScaledObject is validated against the openAPIV3Schema of KEDA's own CRD (vendored under
tests/data/keda/, made strict about unknown fields as `kubectl apply` is by default), its
trigger metadata against the keys KEDA's prometheus scaler reads (pkg/scalers/
prometheus_scaler.go at v2.20.2). The HPA goes through kubernetes-validate. prometheus-adapter
publishes no schema: its config is checked against the fields of its Go config struct
(pkg/config/config.go, kubernetes-sigs/prometheus-adapter v0.12.0), its series names against
the generated recording rules, and its metricsQuery templates are expanded as the adapter
expands them and evaluated, with the KEDA queries, by promtool over the real recording rules on
hand-made engine series; the replica counts HPA and KEDA would pick follow by hand.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpumetrics import catalog
from gpumetrics.render.rules import RECORDING_PATH
from gpumetrics.render.rules.recording import ENGINE_LOAD

from .tools import REPO, load_yaml, require_module, run

EXAMPLES = REPO / "examples" / "autoscaling"
KEDA_CRD = REPO / "tests" / "data" / "keda" / "keda.sh_scaledobjects.yaml"
KUBERNETES = "1.30.0"

#: Trigger metadata keys of KEDA's prometheus scaler (v2.20.2), and the ones it requires.
PROMETHEUS_TRIGGER_KEYS = {
    "serverAddress",
    "query",
    "queryParameters",
    "threshold",
    "activationThreshold",
    "namespace",
    "customHeaders",
    "ignoreNullValues",
    "unsafeSsl",
    "awsRegion",
    "timeout",
    "identityOwner",
}
PROMETHEUS_TRIGGER_REQUIRED = {"serverAddress", "query", "threshold"}

#: prometheus-adapter's config fields (pkg/config/config.go).
ADAPTER_TOP = {"rules", "externalRules", "resourceRules"}
ADAPTER_RULE = {"seriesQuery", "seriesFilters", "resources", "name", "metricsQuery"}
ADAPTER_RESOURCES = {"template", "overrides", "namespaced"}
ADAPTER_NAME = {"matches", "as"}


def _recording_rules() -> set[str]:
    groups = load_yaml(REPO / RECORDING_PATH)["groups"]
    return {rule["record"] for group in groups for rule in group["rules"]}


def _metric_names(promql: str) -> set[str]:
    """Metric names in a query: identifiers followed by a label selector."""
    return set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", promql))


# --- KEDA ---------------------------------------------------------------------------------


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD schema with unknown fields rejected where the API server rejects them
    (objects with declared properties and no x-kubernetes-preserve-unknown-fields)."""
    out = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(out)
    return out


@pytest.fixture(scope="module")
def keda_validator() -> Any:
    jsonschema = require_module("jsonschema", "jsonschema")
    crd = load_yaml(KEDA_CRD)
    assert crd["spec"]["names"]["kind"] == "ScaledObject"
    (version,) = [v for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}},
    }
    return jsonschema.Draft7Validator(schema)


def _scaled_object() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(EXAMPLES / "keda-scaledobject.yaml")
    return loaded


def test_scaled_object_meets_the_keda_crd_schema(keda_validator: Any) -> None:
    scaled = _scaled_object()
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    errors = [e.message for e in keda_validator.iter_errors(scaled)]
    assert errors == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda s: s["spec"].update(minReplicas=1),  # an HPA field, not a ScaledObject one
        lambda s: s["spec"]["triggers"][0]["metadata"].update(threshold=0.7),  # not a string
        lambda s: s["spec"]["triggers"][0].pop("type"),
        lambda s: s["spec"].update(pollingInterval="15s"),
    ],
)
def test_the_crd_schema_rejects_a_broken_scaled_object(keda_validator: Any, breakage: Any) -> None:
    scaled = _scaled_object()
    breakage(scaled)
    assert list(keda_validator.iter_errors(scaled))


def test_prometheus_triggers_use_keys_keda_reads_and_real_series() -> None:
    known = _recording_rules() | set(catalog.BY_NAME)
    triggers = _scaled_object()["spec"]["triggers"]
    assert [t["type"] for t in triggers] == ["prometheus", "prometheus"]
    for trigger in triggers:
        metadata = trigger["metadata"]
        assert metadata.keys() <= PROMETHEUS_TRIGGER_KEYS
        assert metadata.keys() >= PROMETHEUS_TRIGGER_REQUIRED
        assert float(metadata["threshold"]) > 0
        assert _metric_names(metadata["query"]) <= known, metadata["query"]
    assert ENGINE_LOAD in triggers[0]["metadata"]["query"]


# --- HPA ----------------------------------------------------------------------------------


def test_hpa_meets_the_kubernetes_schema() -> None:
    validate = require_module("kubernetes_validate", "kubernetes-validate")
    hpa = load_yaml(EXAMPLES / "hpa.yaml")
    validate.validate(hpa, KUBERNETES, strict=True)
    broken = copy.deepcopy(hpa)
    broken["spec"]["metrics"][0]["pods"]["target"]["averageValue"] = {"value": 1}
    with pytest.raises(validate.ValidationError):
        validate.validate(broken, KUBERNETES, strict=True)
    typo = copy.deepcopy(hpa)
    typo["spec"]["maxReplica"] = 8
    with pytest.raises(validate.ValidationError):
        validate.validate(typo, KUBERNETES, strict=True)


# --- prometheus-adapter -------------------------------------------------------------------


def _adapter() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(EXAMPLES / "prometheus-adapter-rules.yaml")
    return loaded


def test_adapter_config_has_only_fields_the_adapter_reads() -> None:
    config = _adapter()
    assert config.keys() <= ADAPTER_TOP
    for rule in [*config["rules"], *config["externalRules"]]:
        assert rule.keys() <= ADAPTER_RULE
        assert rule["resources"].keys() <= ADAPTER_RESOURCES
        assert all(set(v) == {"resource"} for v in rule["resources"]["overrides"].values())
        assert rule["name"].keys() == ADAPTER_NAME


def test_adapter_rules_name_the_load_score_recording_rule() -> None:
    records = _recording_rules()
    hpa = load_yaml(EXAMPLES / "hpa.yaml")
    published = set()
    for rule in [*_adapter()["rules"], *_adapter()["externalRules"]]:
        (series,) = _metric_names(rule["seriesQuery"])
        assert series == ENGINE_LOAD
        assert series in records
        assert re.search(rule["name"]["matches"], series)
        assert re.fullmatch(r"[a-z][a-z0-9_]*", rule["name"]["as"])  # no colons in k8s names
        published.add(rule["name"]["as"])
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] in published


def _expand(template: str, series: str, matchers: str, group_by: str) -> str:
    """The adapter's Go template (delimiters << >>) with the fields it fills in."""
    out = (
        template.replace("<<.Series>>", series)
        .replace("<<.LabelMatchers>>", matchers)
        .replace("<<.GroupBy>>", group_by)
    )
    assert "<<" not in out, out
    return out


#: Engines as the sidecar's PodMonitor scrape labels them: (namespace, pod, model,
#: sequences per step (of 16), KV usage, waiting requests). Load = max(seq/16, KV).
ENGINES = [
    ("inference", "vllm-0", "llama-3.1-8b", 8, 0.75, 5),  # load 0.75 (KV-bound)
    ("inference", "vllm-1", "llama-3.1-8b", 4, 0.875, 20),  # load 0.875 (KV-bound)
    ("inference", "vllm-2", "llama-3.1-8b", 16, 0.25, 15),  # load 1.0 (batch-bound, clamped)
    ("batch", "vllm-9", "llama-3.1-8b", 10, 0.125, 50),  # other namespace: left out
    ("inference", "mistral-0", "mistral-7b", 8, 0.25, 70),  # other model: left out
]
LOADS = [0.75, 0.875, 1.0]


def _input_series() -> list[dict[str, str]]:
    series = []
    for namespace, pod, model, sequences, kv, waiting in ENGINES:
        labels = (
            f'engine="{pod}",model="{model}",namespace="{namespace}",pod="{pod}",'
            f'container="gpumetrics",instance="{pod}:9835",job="gpumetrics-sidecar"'
        )
        series += [
            {"series": f'gpumetrics_engine_steps_total{{{labels},phase="decode"}}',
             "values": "0+600x30"},
            {"series": f"gpumetrics_engine_step_sequences_total{{{labels}}}",
             "values": f"0+{600 * sequences}x30"},
            {"series": f"gpumetrics_engine_max_batch_sequences{{{labels}}}", "values": "16x30"},
            {"series": f"gpumetrics_engine_kv_cache_usage_ratio{{{labels}}}",
             "values": f"{kv}x30"},
            {"series": f"gpumetrics_engine_waiting_requests{{{labels}}}",
             "values": f"{waiting}x30"},
        ]  # fmt: skip
    return series


def test_queries_evaluate_to_the_hand_computed_load_and_replicas(
    promtool: str, tmp_path: Path
) -> None:
    custom, external = _adapter()["rules"][0], _adapter()["externalRules"][0]
    # GET .../namespaces/inference/pods/*/gpumetrics_engine_load_score for the Deployment's
    # three pods: the adapter's matchers are the namespace and the pod names, grouped by pod.
    pods = "|".join(pod for _, pod, *_ in ENGINES[:3])
    per_pod = _expand(
        custom["metricsQuery"], ENGINE_LOAD, f'namespace="inference",pod=~"{pods}"', "pod"
    )
    # An External metric with selector model=llama-3.1-8b in namespace inference: the
    # selector's matchers then the namespace, no grouping (BuildExternal).
    per_model = _expand(
        external["metricsQuery"], ENGINE_LOAD, 'model="llama-3.1-8b",namespace="inference"', ""
    )
    load_query, queue_query = (t["metadata"]["query"] for t in _scaled_object()["spec"]["triggers"])
    tests = {
        "rule_files": [str(REPO / RECORDING_PATH)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": _input_series(),
                "promql_expr_test": [
                    {
                        "expr": per_pod,
                        "eval_time": "20m",
                        "exp_samples": [
                            {"labels": f'{{pod="{pod}"}}', "value": load}
                            for (_, pod, *_), load in zip(ENGINES, LOADS, strict=False)
                        ],
                    },
                    {
                        "expr": per_model,
                        "eval_time": "20m",
                        "exp_samples": [{"labels": "{}", "value": sum(LOADS)}],
                    },
                    {
                        "expr": load_query,
                        "eval_time": "20m",
                        "exp_samples": [{"labels": "{}", "value": sum(LOADS)}],
                    },
                    {
                        "expr": queue_query,
                        "eval_time": "20m",
                        "exp_samples": [{"labels": "{}", "value": 40}],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "autoscaling-test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = run([promtool, "test", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    # What the autoscalers do with those numbers (AverageValue targets):
    # HPA on the Pods metric: ceil(3 pods x mean load 0.875 / 0.7) = ceil(3.75) = 4.
    hpa = load_yaml(EXAMPLES / "hpa.yaml")
    target = float(hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"].removesuffix("m"))
    assert math.ceil(3 * (sum(LOADS) / 3) / (target / 1000)) == 4
    # KEDA: max over triggers of ceil(value / threshold): load ceil(2.625 / 0.7) = 4, queue
    # ceil(40 / 8) = 5; the queue wins.
    thresholds = [float(t["metadata"]["threshold"]) for t in _scaled_object()["spec"]["triggers"]]
    assert [math.ceil(v / t) for v, t in zip((sum(LOADS), 40), thresholds, strict=True)] == [4, 5]


def test_promtool_catches_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    """The evaluation above can fail: the same set-up with one load off by 0.125 does."""
    query = _scaled_object()["spec"]["triggers"][0]["metadata"]["query"]
    tests = {
        "rule_files": [str(REPO / RECORDING_PATH)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": _input_series(),
                "promql_expr_test": [
                    {
                        "expr": query,
                        "eval_time": "20m",
                        "exp_samples": [{"labels": "{}", "value": sum(LOADS) + 0.125}],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "wrong.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    assert run([promtool, "test", "rules", str(path)]).returncode != 0
