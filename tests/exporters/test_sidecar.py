"""exporters/kubernetes/: the sidecar patch and its PodMonitor.

No kubectl is installable here, so the strategic merge is done in the test the way the API
server does it for a pod template (containers merge by `name`, maps merge key by key), onto a
typical vLLM Deployment; the result is validated against the Kubernetes OpenAPI schema with
kubernetes-validate. The sidecar's arguments are parsed by the real
`gpumetrics serve --print-config`. The PodMonitor (a Prometheus Operator CRD, not in those
schemas) is checked field by field against the patch.
"""

from __future__ import annotations

import copy
import re
import sys
from typing import Any
from urllib.parse import urlsplit

import yaml

from gpumetrics.render.rules.model import DEFAULT_CONFIG

from .tools import EXPORTERS, load_yaml, require_module, run

PATCH = EXPORTERS / "kubernetes" / "sidecar-patch.yaml"
PODMONITOR = EXPORTERS / "kubernetes" / "podmonitor.yaml"

VLLM: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "vllm", "namespace": "inference"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "vllm"}},
        "template": {
            "metadata": {"labels": {"app": "vllm"}},
            "spec": {
                "containers": [
                    {
                        "name": "vllm",
                        "image": "vllm/vllm-openai:v0.8.5",
                        "args": ["--model", "meta-llama/Llama-3.1-70B-Instruct", "--tp", "8"],
                        "ports": [{"name": "http", "containerPort": 8000}],
                        "resources": {"limits": {"nvidia.com/gpu": 8}},
                    }
                ]
            },
        },
    },
}


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as the API server applies it to these fields: maps recurse, lists of
    containers merge by name, other lists and scalars are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and all("name" in c for c in patch):
        by_name = {c["name"]: c for c in base}
        merged_list = [_merge(by_name[c["name"]], c) if c["name"] in by_name else c for c in patch]
        patched = {c["name"] for c in patch}
        return [c for c in base if c["name"] not in patched] + merged_list
    return copy.deepcopy(patch)


def _sidecar(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "gpumetrics"
    ]
    return dict(container)


def test_patch_adds_the_sidecar_and_keeps_the_engine() -> None:
    patch = load_yaml(PATCH)
    assert set(patch) == {"spec"}, "a bare patch: kubectl patch and kustomize both take it"
    patched = _merge(VLLM, patch)
    names = [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]]
    assert names == ["vllm", "gpumetrics"]
    assert (
        patched["spec"]["template"]["spec"]["containers"][0]
        == (VLLM["spec"]["template"]["spec"]["containers"][0])
    )
    assert patched["spec"]["template"]["metadata"]["labels"]["app"] == "vllm"
    validate = require_module("kubernetes_validate", "kubernetes-validate")
    validate.validate(patched, "1.30.0", strict=True)


def test_sidecar_reads_the_engine_on_localhost_and_requests_no_gpu() -> None:
    sidecar = _sidecar(_merge(VLLM, load_yaml(PATCH)))
    assert sidecar["args"][0] == "serve"
    result = run([sys.executable, "-m", "gpumetrics", *sidecar["args"], "--print-config"])
    assert result.returncode == 0, result.stderr
    settings = yaml.safe_load(result.stdout)
    (engine,) = settings["engines"]
    assert urlsplit(engine["url"]).hostname in {"127.0.0.1", "localhost", "::1"}
    assert (
        urlsplit(engine["url"]).port
        == VLLM["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    )
    assert engine["kind"] == "vllm"
    assert "nvidia.com/gpu" not in str(sidecar["resources"])
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert sidecar["securityContext"]["runAsNonRoot"] is True
    assert sidecar["securityContext"]["allowPrivilegeEscalation"] is False
    (port,) = sidecar["ports"]
    assert port["containerPort"] == settings["port"]
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/health"
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_podmonitor_scrapes_the_patched_pods() -> None:
    monitor = load_yaml(PODMONITOR)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "PodMonitor"
    patched = _merge(VLLM, load_yaml(PATCH))
    labels = patched["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == _sidecar(patched)["ports"][0]["name"]
    assert endpoint["interval"] == "15s"
    (job,) = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
    assert re.fullmatch(DEFAULT_CONFIG.exporter_job_regex, job)
