"""benchmarks/bench_worker.py runs (a smoke test: its timings are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'")
pytest.importorskip("transformers", reason="the benchmark compares with transformers")

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_worker.py"


@pytest.mark.slow
def test_bench_worker_runs_and_reports_every_row() -> None:
    args = ["--batch", "2", "--prompt", "8", "--new", "4", "--repeat", "1", "--chat-requests", "4"]
    result = subprocess.run(
        [sys.executable, str(BENCH), *args, "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    rows = {row["impl"]: row for row in report["rows"]}
    assert set(rows) == {"worker/eager", "worker/sdpa", "hf-generate"}
    assert rows["hf-generate"]["ratio_to_hf"] is None
    assert all(row["tokens_per_second"] > 0 for row in rows.values())
    overhead = report["hooks_overhead"]
    assert all(0 < v["hook_s"] < v["loop_s"] for v in overhead.values())
    assert report["chat"]["requests"] == 4
