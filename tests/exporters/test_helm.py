"""The Helm chart, rendered by Helm's own template engine.

Rendering uses helm-python-sdk, whose wheel carries libhelm_c: Helm's Go SDK (v4) behind a C
ABI, so these are the real `helm template` and `helm lint` without a helm binary (no helm
binary is packaged for Debian here). The Kubernetes objects are validated against the
Kubernetes OpenAPI schemas by kubernetes-validate (strict: unknown fields fail). The
Prometheus Operator's CRD objects (ServiceMonitor, PrometheusRule) have no schema there: their
rule groups go through `promtool check rules`, and the rest is checked field by field below.
The ConfigMap's TOML is read by gpumetrics' own config loader and by
`gpumetrics serve --print-config`, the real command line.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import gpumetrics
from gpumetrics.config import load_config
from gpumetrics.render.rules import ALERTS_PATH, RECORDING_PATH
from gpumetrics.render.rules.model import DEFAULT_CONFIG

from .tools import CHART, REPO, require_module, rule_groups, run

Docs = dict[str, dict[str, Any]]
KUBERNETES = "1.30.0"


@pytest.fixture(scope="module")
def helm() -> ModuleType:
    return require_module("helm_python", "helm-python-sdk")


@pytest.fixture(scope="module")
def render(helm: ModuleType) -> Callable[..., Docs]:
    """Render the chart with `values` (release "gm" in namespace "monitoring"); objects by kind."""

    def rendered(values: dict[str, Any] | None = None) -> Docs:
        with helm.Chart.load(CHART) as chart:
            manifests: dict[str, str] = chart.render(values, name="gm", namespace="monitoring")
        docs: Docs = {}
        for path, text in manifests.items():
            if not path.endswith(".yaml"):
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    assert doc["kind"] not in docs, f"two {doc['kind']} objects"
                    docs[doc["kind"]] = doc
        return docs

    return rendered


@pytest.fixture(scope="module")
def default(render: Callable[..., Docs]) -> Docs:
    return render()


def _container(docs: Docs) -> dict[str, Any]:
    containers = docs["DaemonSet"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _toml(docs: Docs) -> str:
    return str(docs["ConfigMap"]["data"]["gpumetrics.toml"])


def test_lint_is_clean(helm: ModuleType) -> None:
    report = helm.lint(CHART, strict=True, kube_version=f"v{KUBERNETES}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [], report
    assert problems == [], report


def test_renders_every_object(default: Docs) -> None:
    assert set(default) == {
        "ConfigMap",
        "DaemonSet",
        "PrometheusRule",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    }
    for doc in default.values():
        assert doc["metadata"]["namespace"] == "monitoring"
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "gpumetrics"


def test_prometheus_rule_groups_are_the_alerts_files(default: Docs) -> None:
    expected = rule_groups(REPO / RECORDING_PATH, REPO / ALERTS_PATH)
    assert default["PrometheusRule"]["apiVersion"] == "monitoring.coreos.com/v1"
    assert default["PrometheusRule"]["spec"]["groups"] == expected
    assert len(expected) >= 7


def test_prometheus_rule_groups_pass_promtool(default: Docs, promtool: str, tmp_path: Path) -> None:
    rules = tmp_path / "rendered-rules.yml"
    rules.write_text(yaml.safe_dump({"groups": default["PrometheusRule"]["spec"]["groups"]}))
    result = run([promtool, "check", "rules", str(rules)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_kubernetes_objects_match_the_api_schemas(default: Docs) -> None:
    validate = require_module("kubernetes_validate", "kubernetes-validate")
    for kind in ("ConfigMap", "DaemonSet", "Service", "ServiceAccount"):
        validate.validate(default[kind], KUBERNETES, strict=True)
    broken = yaml.safe_load(yaml.safe_dump(default["DaemonSet"]))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "9835"
    with pytest.raises(validate.ValidationError):
        validate.validate(broken, KUBERNETES, strict=True)


def test_daemonset_runs_on_gpu_nodes_with_nvml(default: Docs) -> None:
    pod = default["DaemonSet"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["runtimeClassName"] == "nvidia"
    container = _container(default)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    assert container["args"][0] == "serve"


def test_daemonset_is_unprivileged_and_reads_sysfs_read_only(default: Docs) -> None:
    pod = default["DaemonSet"]["spec"]["template"]["spec"]
    container = _container(default)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["host-sys"]["readOnly"] is True
    assert volumes["host-sys"]["hostPath"]["path"] == "/sys"
    ib_root = tomllib.loads(_toml(default))["sources"]["ib_root"]
    assert ib_root.startswith(mounts["host-sys"]["mountPath"] + "/")
    assert ib_root.endswith("/class/infiniband")
    assert all(m.get("readOnly") for m in container["volumeMounts"])


def test_probes_and_ports_agree(default: Docs) -> None:
    container = _container(default)
    (port,) = container["ports"]
    assert container["livenessProbe"]["httpGet"] == {
        "path": "/health",
        "port": port["name"],
        "scheme": "HTTP",
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    (service_port,) = default["Service"]["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    assert service_port["port"] == port["containerPort"] == 9835
    assert tomllib.loads(_toml(default))["serve"]["port"] == port["containerPort"]
    assert default["Service"]["spec"]["clusterIP"] == "None"


def test_service_monitor_selects_the_service_and_names_the_job(default: Docs) -> None:
    monitor, service = default["ServiceMonitor"], default["Service"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["monitoring"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["interval"] == "15s"
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    assert re.fullmatch(DEFAULT_CONFIG.exporter_job_regex, job), job
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_node_name"],
        "targetLabel": "instance",
        "action": "replace",
    } in endpoint["relabelings"]


def _print_config(config: Path) -> dict[str, Any]:
    """`gpumetrics serve --config FILE --print-config`: the settings the exporter would use."""
    argv = [sys.executable, "-m", "gpumetrics", "serve", f"--config={config}", "--print-config"]
    result = run(argv)
    assert result.returncode == 0, result.stderr
    printed: dict[str, Any] = yaml.safe_load(result.stdout)
    return printed


def test_config_map_is_a_config_the_exporter_accepts(default: Docs, tmp_path: Path) -> None:
    config = tmp_path / "gpumetrics.toml"
    config.write_text(_toml(default))
    loaded = load_config(config)
    assert loaded.options["port"] == 9835
    assert loaded.options["address"] == "0.0.0.0"
    assert loaded.options["gpm"] is True
    result = run(
        [sys.executable, "-m", "gpumetrics", "serve", f"--config={config}", "--print-config"]
    )
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["port"] == 9835
    assert printed["ib_root"] == "/host/sys/class/infiniband"


def test_config_values_reach_the_exporter(render: Callable[..., Docs], tmp_path: Path) -> None:
    engines = [
        {
            "name": "vllm-0",
            "url": "http://127.0.0.1:8000/metrics",
            "kind": "vllm",
            "gpus": [0, "GPU-5d3c0a4e-0000-4000-8000-000000000001"],
            "max_bytes": 1048576,
        }
    ]
    docs = render(
        {
            "port": 9400,
            "config": {
                "serve": {"interval": 2.5},
                "metrics": {"exclude": ["gpumetrics_gpu_process_memory_bytes", "*nvlink*"]},
                "engines": engines,
            },
        }
    )
    config = tmp_path / "gpumetrics.toml"
    config.write_text(_toml(docs))
    result = run(
        [sys.executable, "-m", "gpumetrics", "serve", f"--config={config}", "--print-config"]
    )
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["port"] == 9400 == _container(docs)["ports"][0]["containerPort"]
    assert printed["interval"] == 2.5
    assert printed["exclude"] == ["gpumetrics_gpu_process_memory_bytes", "*nvlink*"]
    assert [e["name"] for e in printed["engines"]] == ["vllm-0"]
    assert printed["engines"][0]["gpus"] == ["0", "GPU-5d3c0a4e-0000-4000-8000-000000000001"]
    assert printed["engines"][0]["max_bytes"] == 1048576


@pytest.mark.parametrize(
    ("key", "pattern"),
    [("exclude", "gpumetrics_gpu_no_such_metric"), ("include", "*nvlnk*")],
)
def test_a_metric_pattern_matching_nothing_fails_the_render(
    render: Callable[..., Docs], helm: ModuleType, key: str, pattern: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match="matches no gpumetrics metric"):
        render({"config": {"metrics": {key: [pattern]}}})


def test_optional_parts_follow_the_values(render: Callable[..., Docs]) -> None:
    docs = render(
        {
            "serviceMonitor": {"enabled": False},
            "prometheusRule": {"enabled": False},
            "infiniband": {"enabled": False},
            "webConfig": {"secretName": "gpumetrics-web"},
            "runtimeClassName": "",
        }
    )
    assert "ServiceMonitor" not in docs
    assert "PrometheusRule" not in docs
    pod = docs["DaemonSet"]["spec"]["template"]["spec"]
    assert "runtimeClassName" not in pod
    assert not any("hostPath" in v for v in pod["volumes"])
    config = tomllib.loads(_toml(docs))
    assert config["sources"]["infiniband"] is False
    assert config["web"]["config"] == "/etc/gpumetrics/web/web.yml"
    mounts = {m["mountPath"] for m in _container(docs)["volumeMounts"]}
    assert "/etc/gpumetrics/web" in mounts


def test_config_change_rolls_the_pods(render: Callable[..., Docs], default: Docs) -> None:
    changed = render({"config": {"serve": {"interval": 5.0}}})
    key = "checksum/config"
    before = default["DaemonSet"]["spec"]["template"]["metadata"]["annotations"][key]
    after = changed["DaemonSet"]["spec"]["template"]["metadata"]["annotations"][key]
    assert before != after


def test_chart_app_version_is_the_package_version(helm: ModuleType) -> None:
    with helm.Chart.load(CHART) as chart:
        assert chart.metadata["appVersion"] == gpumetrics.__version__
        assert _container_image(chart.render(None, name="gm", namespace="x")).endswith(
            f":{gpumetrics.__version__}"
        )


def _container_image(manifests: dict[str, str]) -> str:
    daemonset = yaml.safe_load(manifests["gpumetrics/templates/daemonset.yaml"])
    return str(daemonset["spec"]["template"]["spec"]["containers"][0]["image"])


def test_pod_attribution_mounts_the_kubelet_socket_and_passes_the_flag(
    render: Callable[..., Docs], default: Docs, tmp_path: Path
) -> None:
    docs = render({"podAttribution": {"enabled": True}})
    pod = docs["DaemonSet"]["spec"]["template"]["spec"]
    container = _container(docs)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert volumes["pod-resources"]["hostPath"] == {
        "path": "/var/lib/kubelet/pod-resources",
        "type": "Directory",
    }
    assert mounts["pod-resources"] == {
        "name": "pod-resources",
        "mountPath": "/var/lib/kubelet/pod-resources",
        "readOnly": True,
    }
    flags = [a for a in container["args"] if "pod-attribution" in a or "kubelet" in a]
    assert flags == [
        "--pod-attribution=kubelet",
        "--kubelet-socket=/var/lib/kubelet/pod-resources/kubelet.sock",
    ]
    # The root-owned socket: user 0, still no capability and no privilege escalation.
    security = container["securityContext"]
    assert (security["runAsUser"], security["runAsNonRoot"]) == (0, False)
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["allowPrivilegeEscalation"] is False
    validate = require_module("kubernetes_validate", "kubernetes-validate")
    validate.validate(docs["DaemonSet"], KUBERNETES, strict=True)
    # The exporter accepts the flags as rendered (with the chart's config file).
    config = tmp_path / "gpumetrics.toml"
    config.write_text(_toml(docs))
    argv = [sys.executable, "-m", "gpumetrics", *container["args"], "--print-config"]
    result = run([a.replace("/etc/gpumetrics/config/gpumetrics.toml", str(config)) for a in argv])
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["pod_attribution"] == "kubelet"
    assert printed["kubelet_socket"] == "/var/lib/kubelet/pod-resources/kubelet.sock"
    # The pod labels survive the scrape (not renamed exported_pod under the target's pod).
    (endpoint,) = docs["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    assert default["ServiceMonitor"]["spec"]["endpoints"][0]["honorLabels"] is False
    # Off by default: nothing mounted, no flag, the non-root user.
    default_container = _container(default)
    assert not any("pod-attribution" in a for a in default_container["args"])
    assert "pod-resources" not in {m["name"] for m in default_container["volumeMounts"]}
    assert "runAsUser" not in default_container["securityContext"]
