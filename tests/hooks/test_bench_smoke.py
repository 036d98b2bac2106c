"""benchmarks/bench_hooks.py runs (a smoke test: its numbers are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_hooks.py"


@pytest.mark.slow
def test_bench_hooks_runs_and_reports_every_case() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--repeat", "1", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    assert report["machine"]["cpu_count"] >= 1
    rows = report["rows"]
    assert {row["case"] for row in rows} == {"counter", "step", "render"}
    assert all(row["ns_per_op"] > 0 for row in rows)
    assert all(row["ratio"] == 1.0 for row in rows if row["impl"] == "prometheus_client")
