"""Real Prometheus and Alertmanager servers for integration tests (Debian packages, loopback,
temporary directories). Discovery takes ~5 s: callers poll with deadlines, never fixed sleeps."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..conftest import require_tool

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    check: Callable[[], T | None],
    timeout: float = 60.0,
    what: str = "condition",
    interval: float = 0.25,
) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # the server may not be up yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_error}")


def http_get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


class Prometheus:
    """A running Prometheus on 127.0.0.1 with its HTTP API helpers."""

    def __init__(self, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.process, self.log = port, process, log
        self.url = f"http://127.0.0.1:{port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; returns the result vector (raises on API errors)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = http_get_json(url)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def targets_up(self) -> bool:
        body = http_get_json(f"{self.url}/api/v1/targets")
        active = body["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def alerts(self) -> list[dict[str, Any]]:
        return list(http_get_json(f"{self.url}/api/v1/alerts")["data"]["alerts"])


@contextmanager
def prometheus(
    tmp: Path,
    scrape_targets: list[str],
    *,
    scrape_interval: str = "1s",
    rule_files: list[Path] | None = None,
    alertmanager: str | None = None,
    evaluation_interval: str = "1s",
    target_labels: dict[str, str] | None = None,
) -> Iterator[Prometheus]:
    """Start Prometheus scraping `scrape_targets` (host:port) every `scrape_interval`;
    `target_labels` are attached to every target (how fleets add cluster and region)."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "scrape_configs": [
            {
                "job_name": "gpumetrics",
                "static_configs": [{"targets": scrape_targets, "labels": target_labels or {}}],
            }
        ],
    }
    if rule_files:
        config["rule_files"] = [str(p) for p in rule_files]
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    with prometheus_server(tmp, config, f"--storage.tsdb.path={tmp / 'data'}") as server:
        yield server


@contextmanager
def prometheus_server(tmp: Path, config: dict[str, Any], *flags: str) -> Iterator[Prometheus]:
    """A Prometheus on a free 127.0.0.1 port with `config` (written to tmp/prometheus.yml)
    and extra command-line `flags` (storage path, agent mode, remote-write receiver), once
    /-/ready answers; stopped on exit."""
    binary = require_tool("prometheus")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--web.listen-address=127.0.0.1:{port}",
                *flags,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(port, process, log)
    try:
        wait_for(
            lambda: urllib.request.urlopen(f"{server.url}/-/ready", timeout=2).status == 200,
            30,
            f"prometheus {' '.join(flags)} ready",
        )
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


class Alertmanager:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.address = f"127.0.0.1:{port}"

    def alerts(self) -> list[dict[str, Any]]:
        return list(http_get_json(f"{self.url}/api/v2/alerts"))


@contextmanager
def alertmanager(tmp: Path, webhook_url: str) -> Iterator[Alertmanager]:
    """Start Alertmanager routing every alert to `webhook_url` at once (no grouping delay)."""
    binary = shutil.which("prometheus-alertmanager") or require_tool("alertmanager")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "route": {
            "receiver": "hook",
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
            "group_by": ["alertname"],
        },
        "receivers": [
            {"name": "hook", "webhook_configs": [{"url": webhook_url, "send_resolved": False}]}
        ],
    }
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(config))
    with (tmp / "alertmanager.log").open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp / 'alertmanager.yml'}",
                f"--storage.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    manager = Alertmanager(port)
    try:
        wait_for(
            lambda: urllib.request.urlopen(f"{manager.url}/-/ready", timeout=2).status == 200,
            30,
            "alertmanager ready",
        )
        yield manager
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
