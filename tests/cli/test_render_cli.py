"""`gpumetrics render` writes only into a gpumetrics checkout, unless --root says where."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpumetrics.cli import cli


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
