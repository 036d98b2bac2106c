"""exporters/prometheus/prometheus.yml and the compose stack's Alertmanager config, checked by
the real tools: `promtool check config` (which also loads and checks every rule file the
config names, so the relative rule_files paths must resolve) and `amtool check-config`."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from gpumetrics.render.rules import ALERTS_PATH, RECORDING_PATH, all_alerts
from gpumetrics.render.rules.model import DEFAULT_CONFIG

from .tools import EXPORTERS, REPO, load_yaml, require_executable, run

CONFIG = EXPORTERS / "prometheus" / "prometheus.yml"
ALERTMANAGER = EXPORTERS / "compose" / "alertmanager.yml"


def test_promtool_checks_the_config_and_its_rule_files(promtool: str) -> None:
    result = run([promtool, "check", "config", str(CONFIG)])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS: 2 rule files found" in output, output
    for path in (RECORDING_PATH, ALERTS_PATH):
        assert f"Checking {REPO / path}\n  SUCCESS: " in output, output


def test_promtool_fails_when_a_rule_file_is_missing(promtool: str, tmp_path: Path) -> None:
    """The check above can fail: the same config one directory off loses its rule files."""
    shutil.copy(CONFIG, tmp_path / "prometheus.yml")
    result = run([promtool, "check", "config", str(tmp_path / "prometheus.yml")])
    assert result.returncode != 0
    assert "gpumetrics-recording-rules.yml" in result.stdout + result.stderr


def test_rule_files_are_the_generated_ones() -> None:
    config = load_yaml(CONFIG)
    resolved = {(CONFIG.parent / p).resolve() for p in config["rule_files"]}
    assert resolved == {(REPO / RECORDING_PATH).resolve(), (REPO / ALERTS_PATH).resolve()}


def test_scrape_config_fits_the_rules() -> None:
    config = load_yaml(CONFIG)
    assert set(config["global"]["external_labels"]) == {"cluster", "region"}
    assert config["global"]["scrape_interval"] == "15s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    exporter_jobs = [j for j in jobs if re.fullmatch(DEFAULT_CONFIG.exporter_job_regex, j)]
    assert exporter_jobs == ["gpumetrics"], "exactly one job the rules' job matcher selects"
    (sd,) = jobs["gpumetrics"]["file_sd_configs"]
    (pattern,) = sd["files"]
    targets = sorted(CONFIG.parent.glob(pattern))
    assert targets, f"no file_sd file matches {pattern}"
    for path in targets:
        for group in load_yaml(path):
            assert all(re.fullmatch(r"[a-z0-9.-]+:[0-9]+", t) for t in group["targets"]), path
            assert not {"cluster", "region", "hostname"} & set(group.get("labels", {}))


def test_amtool_checks_the_alertmanager_config() -> None:
    amtool = require_executable("amtool", "apt-get install prometheus-alertmanager")
    result = run([amtool, "check-config", str(ALERTMANAGER)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_rejects_a_route_to_an_unknown_receiver(tmp_path: Path) -> None:
    amtool = require_executable("amtool", "apt-get install prometheus-alertmanager")
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(ALERTMANAGER.read_text().replace("receiver: ui-only", "receiver: nobody", 1))
    result = run([amtool, "check-config", str(broken)])
    assert result.returncode != 0


@pytest.mark.parametrize("key", ["source_matchers", "target_matchers"])
def test_inhibit_rules_name_real_alerts_and_severities(key: str) -> None:
    names = {a.name for a in all_alerts()}
    severities = {a.severity.value for a in all_alerts()}
    for rule in load_yaml(ALERTMANAGER)["inhibit_rules"]:
        for matcher in rule[key]:
            label, value = re.fullmatch(r'(\w+)="([^"]*)"', matcher).groups()  # type: ignore[union-attr]
            assert value in {"alertname": names, "severity": severities}[label], matcher
