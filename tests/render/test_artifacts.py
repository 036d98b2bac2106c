"""Generated files: committed copies match the generator, and `render --check` covers them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpumetrics.cli import cli
from gpumetrics.render import ARTIFACTS, check, find_checkout, write, write_atomic
from gpumetrics.render.rules import all_alerts


def test_committed_files_match_the_generator(repo_root: Path) -> None:
    assert check(repo_root) == []


def test_artifacts_cover_dashboards_rules_and_runbooks(repo_root: Path) -> None:
    paths = {a.path for a in ARTIFACTS}
    on_disk = {
        p.relative_to(repo_root).as_posix()
        for pattern in ("dashboards/**/*", "alerts/*", "docs/runbooks/*")
        for p in repo_root.glob(pattern)
        if p.is_file()
    }
    assert on_disk <= paths
    assert not any(p.startswith("alerts/tests/") for p in paths), "unit tests are hand-written"
    assert {f"docs/runbooks/{a.name}.md" for a in all_alerts()} <= paths
    assert len(paths) == len(ARTIFACTS)


def test_rendering_is_deterministic() -> None:
    for artifact in ARTIFACTS:
        first = artifact.render()
        assert first == artifact.render(), artifact.path
        assert first.endswith("\n"), artifact.path


def test_check_reports_a_hand_edited_dashboard(tmp_path: Path) -> None:
    write(tmp_path)
    assert check(tmp_path) == []
    board = tmp_path / "dashboards" / "efficiency.json"
    board.write_text(board.read_text().replace('"MFU"', '"MFU (edited)"'))
    (tmp_path / "alerts" / "gpumetrics-alerts.yml").unlink()
    assert check(tmp_path) == ["dashboards/efficiency.json", "alerts/gpumetrics-alerts.yml"]


def test_cli_render_check_passes_on_the_repository(repo_root: Path) -> None:
    result = CliRunner().invoke(cli, ["render", "--check", "--root", str(repo_root)])
    assert result.exit_code == 0, result.output


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "METRICS.md"
    target.write_text("old\n")
    target.chmod(0o640)
    with pytest.raises(UnicodeEncodeError):
        write_atomic(target, "new text, then a lone surrogate \ud800")  # fails mid-write
    assert target.read_text() == "old\n"  # an in-place write would have truncated it
    assert [p.name for p in tmp_path.iterdir()] == ["METRICS.md"]
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # an existing file keeps its mode
    assert [p.name for p in tmp_path.iterdir()] == ["METRICS.md"]


def test_write_renders_every_file_and_leaves_no_temporaries(tmp_path: Path) -> None:
    assert sorted(write(tmp_path)) == sorted(a.path for a in ARTIFACTS)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert write(tmp_path) == []


def test_the_checkout_is_found_from_inside_it(repo_root: Path, tmp_path: Path) -> None:
    assert find_checkout(repo_root) == repo_root
    assert find_checkout(repo_root / "gpumetrics" / "render") == repo_root
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "someone-else"\n')
    assert find_checkout(tmp_path) is None
