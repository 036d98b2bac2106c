"""scripts/gpu_fast_decode_check.py: its CPU dry run (tiny model) end to end, and its numbers
recomputed from the cost model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip(
    "torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'"
)

from gpumetrics.costmodel import PRESETS, RequestWork, step_cost  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_fast_decode_check.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_dry_run_checks_correctness_and_times_every_cell(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    result = _run("--dry-run", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["ok"] is True
    assert report["bf16_logits"]["steps"] > 0
    logits = report["bf16_logits"]  # fp32 on CPU: all three agree
    assert logits["fast_vs_reference_max"] <= 1e-5
    assert logits["fast_error_max"] <= 1e-5
    assert logits["reference_error_max"] <= 1e-5
    assert logits["fast"] == logits["reference"] == logits["fast_vs_reference"] == logits["rows"]
    assert report["fp32_greedy"]["paths"] == ["sdpa", "fast-decode+sdpa"]
    cells = report["cells"]
    assert [(c["batch"], c["context"]) for c in cells] == [
        (b, c) for c in (24, 40) for b in (1, 3, 4)
    ]
    spec = PRESETS["tiny"]
    for cell in cells:  # tokens/s and MBU from the step time and the cost model's bytes
        cost = step_cost(
            spec,
            [RequestWork(1, cell["context"], True)] * cell["batch"],
            dtype="fp32",
            kv_dtype="fp32",
        )
        moved = cost.read_bytes + cost.kv_write_bytes
        assert cell["bytes"] == moved
        assert cell["tokens_per_s"] == pytest.approx(cell["batch"] / (cell["step_ms"] / 1e3))
        assert cell["mbu"] == pytest.approx(moved / (cell["step_ms"] / 1e3) / 4.8e12)
    assert {r["batch"] for r in report["reference"]} == {1, 4}
    assert "elapsed" in result.stdout


def test_without_cuda_and_without_dry_run_it_says_so(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    result = _run("--out", str(tmp_path / "x.json"))
    assert result.returncode == 2
    assert "no CUDA device: use --dry-run" in result.stderr
