"""exporters/compose/compose.yaml, checked structurally.

`docker compose config` needs the compose plugin and a Docker engine, and neither is available
here, so the stack is neither validated by Compose nor run. Instead: its YAML is read with
PyYAML and every reference is followed: build contexts and Dockerfiles exist, every bind-mounted
file exists, the files each container reads are mounted where its config says they are,
services reach each other by the names and ports they listen on, and the exporter's and
worker's command lines are parsed by the real `gpumetrics` CLI.
"""

from __future__ import annotations

import posixpath
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pynvml
import pytest
import yaml

from gpumetrics.cli.worker import worker
from gpumetrics.testing import FakeNvml, parse_fake_gpus

from .tools import EXPORTERS, REPO, load_yaml, run

COMPOSE = EXPORTERS / "compose" / "compose.yaml"
HERE = COMPOSE.parent


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    stack = load_yaml(COMPOSE)
    assert stack["name"] == "gpumetrics"
    return dict(stack["services"])


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts of a service: container path -> host path (named volumes left out)."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        host, container, *_ = volume.split(":")
        if host.startswith("."):
            mounts[container] = (HERE / host).resolve()
    return mounts


def _host_path(service: dict[str, Any], container_path: str) -> Path:
    """Where a file the container reads at `container_path` comes from on the host."""
    for container, host in sorted(_mounts(service).items(), key=lambda m: -len(m[0])):
        if container_path == container or container_path.startswith(container.rstrip("/") + "/"):
            return host / posixpath.relpath(container_path, container)
    raise AssertionError(f"{container_path} is not mounted")


def _flag(command: list[str], name: str) -> str:
    (value,) = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")]
    return value


def test_the_stack_has_every_part(services: dict[str, Any]) -> None:
    assert set(services) == {"exporter", "worker", "prometheus", "alertmanager", "grafana"}
    for name, service in services.items():
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", service["image"]), f"{name}: pin a tag"
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_builds_point_at_the_dockerfile(services: dict[str, Any]) -> None:
    for name in ("exporter", "worker"):
        build = services[name]["build"]
        context = (HERE / build["context"]).resolve()
        assert context == REPO
        assert (context / build["dockerfile"]).resolve() == EXPORTERS / "Dockerfile"
    assert services["worker"]["build"]["args"] == {"EXTRAS": "worker"}
    assert "ARG EXTRAS" in (EXPORTERS / "Dockerfile").read_text()


def test_every_mounted_file_exists_and_named_volumes_are_declared(
    services: dict[str, Any],
) -> None:
    declared = set(load_yaml(COMPOSE).get("volumes", {}))
    for name, service in services.items():
        for volume in service.get("volumes", []):
            host, container, *mode = volume.split(":")
            assert container.startswith("/"), volume
            assert mode in ([], ["ro"]), volume
            if host.startswith("."):
                assert (HERE / host).exists(), f"{name}: {host} does not exist"
            else:
                assert host in declared, f"{name}: volume {host} not declared"


def test_published_ports_are_distinct(services: dict[str, Any]) -> None:
    published = [
        int(port.split(":")[0])
        for service in services.values()
        for port in service.get("ports", [])
    ]
    assert len(published) == len(set(published))
    assert 9835 in published


def test_exporter_command_is_accepted_by_gpumetrics_serve(services: dict[str, Any]) -> None:
    command = services["exporter"]["command"]
    assert command[0] == "serve"
    argv = [sys.executable, "-m", "gpumetrics", *command, "--print-config"]
    result = run(argv)
    assert result.returncode == 0, result.stderr
    settings = yaml.safe_load(result.stdout)
    assert settings["fake_gpus"] == "h200x8"
    (engine,) = settings["engines"]
    url = urlsplit(engine["url"])
    assert url.hostname == "worker"
    assert f"0.0.0.0:{url.port}" == _flag(services["worker"]["command"], "serve")
    assert f"{url.port}" in services["worker"]["expose"]


def test_exporter_declares_the_fake_gpu_uuid() -> None:
    """The UUID in --engine is FakeNvml's h200x8 GPU 0, so the MFU/MBU joins find it."""
    command = load_yaml(COMPOSE)["services"]["exporter"]["command"]
    (declared,) = re.findall(r"gpus=0:(GPU-[0-9a-f-]+)", " ".join(command))
    fake = FakeNvml(parse_fake_gpus("h200x8")).install()
    try:
        pynvml.nvmlInit()
        uuid = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(0))
        pynvml.nvmlShutdown()
    finally:
        fake.uninstall()
    assert declared == (uuid.decode() if isinstance(uuid, bytes) else uuid)


def test_worker_command_is_accepted_by_gpumetrics_worker(services: dict[str, Any]) -> None:
    command = services["worker"]["command"]
    assert command[0] == "worker"
    context = worker.make_context("worker", list(command[1:]))
    assert context.params["device"] == "cpu"
    assert context.params["model"] == "tiny"
    assert context.params["serve_at"] == ("0.0.0.0", 8001)


def test_prometheus_finds_its_config_rules_and_targets(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    config_path = _flag(prometheus["command"], "config.file")
    host_config = _host_path(prometheus, config_path)
    assert host_config == EXPORTERS / "prometheus" / "prometheus.yml"
    config = load_yaml(host_config)
    config_dir = posixpath.dirname(config_path)
    for rule_file in config["rule_files"]:
        inside = posixpath.normpath(posixpath.join(config_dir, rule_file))
        host = _host_path(prometheus, inside)
        assert host.is_file(), f"{rule_file} -> {inside} -> {host}"
        assert host == (host_config.parent / rule_file).resolve()
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "gpumetrics"]
    pattern = posixpath.join(config_dir, job["file_sd_configs"][0]["files"][0])
    targets_dir = _host_path(prometheus, posixpath.dirname(pattern))
    targets = [t for f in targets_dir.glob("*.yml") for g in load_yaml(f) for t in g["targets"]]
    exporter_port = services["exporter"]["ports"][0].split(":")[1]
    assert targets == [f"exporter:{exporter_port}"]
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    (target,) = alertmanagers["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in services
    assert any(p.endswith(f":{port}") for p in services[host]["ports"])


def test_alertmanager_reads_the_checked_config(services: dict[str, Any]) -> None:
    alertmanager = services["alertmanager"]
    path = _host_path(alertmanager, _flag(alertmanager["command"], "config.file"))
    assert path == EXPORTERS / "compose" / "alertmanager.yml"


def test_grafana_is_provisioned_with_the_dashboards(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    provisioning = "/etc/grafana/provisioning"
    providers = _host_path(grafana, f"{provisioning}/dashboards/gpumetrics.yml")
    datasources = _host_path(grafana, f"{provisioning}/datasources/gpumetrics.yml")
    assert providers == REPO / "dashboards" / "provisioning" / "dashboards.yml"
    assert datasources == REPO / "dashboards" / "provisioning" / "datasources.yml"
    (provider,) = load_yaml(providers)["providers"]
    boards = _host_path(grafana, provider["options"]["path"])
    assert sorted(boards.glob("*.json")) == sorted((REPO / "dashboards").glob("*.json"))
    assert len(list(boards.glob("*.json"))) >= 4
    (source,) = load_yaml(datasources)["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname in services
    assert any(p.endswith(f":{url.port}") for p in services[str(url.hostname)]["ports"])
