"""examples/instrument_engine runs, serves its URL, and records without hook errors."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "instrument_engine" / "toy_engine.py"


def test_toy_engine_serves_metrics() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLE), "--port", "0", "--seconds", "3", "--model", "tiny"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("serving http://127.0.0.1:")
        url = first.split()[1]
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
        assert 'gpumetrics_engine_info{engine="toy-0",model="tiny",kind="gpumetrics"} 1' in body
        assert 'gpumetrics_engine_cache_config_info{engine="toy-0",model="tiny",' in body
        rest, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "hook errors: 0" in rest
