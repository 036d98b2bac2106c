"""benchmarks/bench_cli.py runs (a smoke test: its numbers are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_cli.py"


@pytest.mark.slow
def test_bench_cli_runs_and_reports_every_command() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--runs", "10", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    rows = {row["command"]: row for row in report["rows"]}
    assert set(rows) >= {"import click", "gpumetrics --help", "python -m gpumetrics --help"}
    assert rows["import click"]["ratio"] == 1.0
    assert all(row["runs"] == 10 and row["median_ms"] > 0 for row in rows.values())


def test_fewer_than_ten_runs_are_refused() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--runs", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--runs must be >= 10" in result.stderr
