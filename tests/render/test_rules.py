"""Rule files: promtool accepts them, the unit tests in alerts/tests pass and cover every alert
firing and not firing, and the generator's YAML says what its model says."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from gpumetrics.render.rules import (
    Alert,
    Recording,
    RuleConfig,
    alert_groups,
    all_alerts,
    recording_groups,
    render_alerting_rules,
    render_recording_rules,
)
from gpumetrics.render.rules.model import THERMAL_AND_POWER_REASONS
from gpumetrics.sources.nvml_fields import CLOCK_EVENT_REASONS

from .exprs import rule_file_paths

_RECORD_NAME = re.compile(r"^gpumetrics:[a-z][a-z0-9_]*:(rate(1m|5m|1h)|avg5m|5m|ratio|sum|info)$")


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], check=False, capture_output=True, text=True, timeout=120
    )


def _unit_test_files(root: Path) -> list[Path]:
    return sorted((root / "alerts" / "tests").glob("*.yml"))


def test_promtool_check_rules_passes(promtool: str, repo_root: Path) -> None:
    files = rule_file_paths(repo_root)
    assert [p.name for p in files] == ["gpumetrics-alerts.yml", "gpumetrics-recording-rules.yml"]
    result = _promtool(promtool, "check", "rules", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2


def test_promtool_unit_tests_pass(promtool: str, repo_root: Path) -> None:
    files = _unit_test_files(repo_root)
    assert len(files) >= 4
    result = _promtool(promtool, "test", "rules", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def _alert_cases(root: Path) -> dict[str, tuple[int, int]]:
    """alert -> (cases where it fires, cases where it is expected silent)."""
    cases: dict[str, list[int]] = {}
    for path in _unit_test_files(root):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                counts = cases.setdefault(case["alertname"], [0, 0])
                counts[0 if case.get("exp_alerts") else 1] += 1
    return {name: (fire, quiet) for name, (fire, quiet) in cases.items()}


def test_every_alert_is_unit_tested_firing_and_not_firing(repo_root: Path) -> None:
    cases = _alert_cases(repo_root)
    names = [a.name for a in all_alerts()]
    assert len(names) == 11
    missing = {n: cases.get(n, (0, 0)) for n in names if min(cases.get(n, (0, 0))) < 1}
    assert missing == {}
    assert set(cases) <= set(names), "unit tests name alerts that do not exist"


def _run_unit_tests_against(
    promtool: str, repo_root: Path, tmp_path: Path, config: RuleConfig
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "tests").mkdir()
    for path in _unit_test_files(repo_root):
        shutil.copy(path, tmp_path / "tests" / path.name)
    (tmp_path / "gpumetrics-recording-rules.yml").write_text(render_recording_rules(config))
    (tmp_path / "gpumetrics-alerts.yml").write_text(render_alerting_rules(config))
    return _promtool(promtool, "test", "rules", str(tmp_path / "tests" / "kv-cache.yml"))


def test_miss_spike_tests_need_the_traffic_floor(
    promtool: str, repo_root: Path, tmp_path: Path
) -> None:
    """Without the traffic floor the low-traffic engine e3 pages: the tests catch it."""
    result = _run_unit_tests_against(
        promtool, repo_root, tmp_path, RuleConfig(miss_spike_min_tokens_per_second=0)
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert 'engine="e3"' in output
    assert 'engine="e2"' not in output, "the idle engine must stay silent regardless"


def test_miss_spike_tests_need_the_baseline(promtool: str, repo_root: Path, tmp_path: Path) -> None:
    """Without the margin over the baseline, the steadily-high-miss engine e4 pages."""
    result = _run_unit_tests_against(
        promtool, repo_root, tmp_path, RuleConfig(miss_spike_margin=-1.0)
    )
    assert result.returncode != 0
    assert 'engine="e4"' in result.stdout + result.stderr


def _rules_yaml(text: str) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(text)["groups"]
    return groups


def test_recording_yaml_says_what_the_model_says() -> None:
    parsed = _rules_yaml(render_recording_rules())
    model = recording_groups()
    assert [g["name"] for g in parsed] == [g.name for g in model]
    for group, expected in zip(parsed, model, strict=True):
        rules = [r for r in expected.rules if isinstance(r, Recording)]
        assert [(r["record"], r["expr"]) for r in group["rules"]] == [
            (r.record, r.expr) for r in rules
        ]


def test_alert_yaml_says_what_the_model_says() -> None:
    config = RuleConfig(runbook_base_url="https://example.test/runbooks/")
    parsed = _rules_yaml(render_alerting_rules(config))
    alerts = [a for g in alert_groups(config) for a in g.rules if isinstance(a, Alert)]
    rules = [r for g in parsed for r in g["rules"]]
    assert len(rules) == len(alerts)
    for rule, alert in zip(rules, alerts, strict=True):
        assert rule["alert"] == alert.name
        assert rule["expr"] == alert.expr
        assert rule.get("for", "") == alert.for_
        assert rule["labels"] == {"severity": alert.severity.value}
        assert rule["annotations"] == {
            "summary": alert.summary,
            "description": alert.description,
            "runbook_url": f"https://example.test/runbooks/{alert.name}.md",
        }


def test_exporter_job_matcher_is_configurable() -> None:
    default = render_alerting_rules()
    assert 'up{job=~".*gpumetrics.*"} == 0' in default
    custom = render_alerting_rules(RuleConfig(exporter_job_regex="gpu-exporter|dcgm-sidecar"))
    assert 'up{job=~"gpu-exporter|dcgm-sidecar"} == 0' in custom


def test_recording_rule_names_follow_the_convention() -> None:
    names = [r.record for g in recording_groups() for r in g.rules if isinstance(r, Recording)]
    assert len(names) == len(set(names))
    assert [n for n in names if not _RECORD_NAME.match(n)] == []
    assert "gpumetrics:kv_cache_hit_ratio:rate5m" in names


def test_alerts_carry_severity_templated_description_and_a_runbook(repo_root: Path) -> None:
    for alert in all_alerts():
        assert alert.severity.value in {"warning", "critical"}
        assert alert.summary
        assert not alert.summary.endswith(".")
        assert "{{ $labels." in alert.description
        assert alert.description.endswith(".")
        assert (repo_root / "docs" / "runbooks" / f"{alert.name}.md").is_file()
        assert alert.runbook.causes
        assert alert.runbook.checks
        assert alert.runbook.actions


def test_throttle_reasons_are_ones_the_nvml_source_emits() -> None:
    emitted = {reason for reason, _ in CLOCK_EVENT_REASONS}
    assert set(THERMAL_AND_POWER_REASONS) <= emitted
    assert "sw_power_cap" not in THERMAL_AND_POWER_REASONS
