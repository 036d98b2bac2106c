"""`gpumetrics render` writes only into a gpumetrics checkout, unless --root says where."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gpumetrics.cli import cli
from gpumetrics.render.deployables import CHART_RULE_PATHS
from gpumetrics.render.rules import ALERTS_PATH
from gpumetrics.render.rules.files import all_alerts


def test_outside_a_checkout_render_refuses_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for args in ([], ["--check"]):
        result = CliRunner().invoke(cli, ["render", *args])
        assert result.exit_code == 2, result.output
        assert "is not inside a gpumetrics checkout" in result.output
        assert "--root" in result.output
    assert os.listdir(tmp_path) == []


def test_with_root_it_writes_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["render", "--root", "out"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "METRICS.md").is_file()


def test_inside_a_checkout_it_finds_the_root(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo_root / "docs")
    result = CliRunner().invoke(cli, ["render", "--check"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def _runbook_urls(path: Path) -> list[str]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return [r["annotations"]["runbook_url"] for g in groups for r in g["rules"] if "alert" in r]


def test_runbook_base_url_makes_every_runbook_link_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    base = "https://git.example/org/gpumetrics/blob/main/docs/runbooks"
    result = CliRunner().invoke(cli, ["render", "--root", "out", "--runbook-base-url", base])
    assert result.exit_code == 0, result.output
    names = [a.name for a in all_alerts()]
    for path in (ALERTS_PATH, CHART_RULE_PATHS[1]):
        urls = _runbook_urls(tmp_path / "out" / path)
        assert urls == [f"{base}/{name}.md" for name in names]
    same = CliRunner().invoke(
        cli, ["render", "--root", "out", "--check", "--runbook-base-url", base + "/"]
    )
    assert same.exit_code == 0, same.output
    default = CliRunner().invoke(cli, ["render", "--root", "out", "--check"])
    assert default.exit_code == 1
    assert ALERTS_PATH in default.output


def test_runbook_base_url_comes_from_the_environment_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GPUMETRICS_RENDER_RUNBOOK_BASE_URL", "https://wiki.example/rb/")
    result = CliRunner().invoke(cli, ["render", "--root", "out"])
    assert result.exit_code == 0, result.output
    urls = _runbook_urls(tmp_path / "out" / ALERTS_PATH)
    assert urls
    assert all(u.startswith("https://wiki.example/rb/") for u in urls)


@pytest.mark.parametrize(
    "url", ["docs/runbooks/", "ftp://x.example/", "https://", "https://x/?a=1"]
)
def test_a_relative_or_odd_runbook_base_url_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["render", "--root", "out", "--runbook-base-url", url])
    assert result.exit_code == 2, result.output
    assert "runbook_base_url" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
