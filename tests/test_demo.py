"""`make demo`'s script runs end to end: the worker under KV pressure and serve on fake H200s
together, one `top --once` frame with naive utilisation beside the derived truth, and the
explanation built from that frame's numbers (the wait for history shortened to 8 s)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent


def test_demo_shows_the_frame_and_explains_it() -> None:
    env = {**os.environ, "GPUMETRICS_DEMO_SETTLE_S": "8", "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "\x1b" not in out  # a pipe gets plain text
    frame = out[out.index("gpumetrics top  http://") :]
    gpu0 = next(line.split() for line in frame.splitlines() if line.split()[:1] == ["0"])
    assert gpu0[1:5] == ["100.0%", "85.0%", "22.0%", "81.0%"]  # naive, SM, tensor, DRAM
    engine = next(line.split() for line in frame.splitlines() if line.startswith(" worker"))
    assert engine[1] == "tiny"
    assert engine[4].endswith("%")  # the hit ratio, derived by serve
    assert "Naive utilization reads 100% on every GPU" in out
    assert "No Prometheus was involved" in out
