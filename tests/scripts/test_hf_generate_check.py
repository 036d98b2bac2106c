"""scripts/hf_generate_check.py on the CPU with the tiny preset: the numbers it derives checked
against values worked out by hand from the tiny shape (2 layers, hidden 128, 4 heads of 32,
2 KV heads, FFN 256, vocab 320, untied embeddings; fp32 on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the comparison needs torch")
pytest.importorskip("transformers", reason="the comparison is with transformers")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "hf_generate_check.py"
#: nn.Linear weights a decode step reads: per layer q 128x128, k and v 128x64, o 128x128,
#: gate/up/down 3x128x256 (147,456), twice, plus the LM head 320x128 — 335,872 x 4 bytes.
WEIGHT_BYTES = 335_872 * 4
#: Every parameter: the above, the input embedding 320x128 and five RMSNorm weights of 128.
PARAMS = 335_872 + 40_960 + 5 * 128
#: KV bytes of one token: 2 layers x (K + V) x 2 KV heads x 32 x 4 bytes.
KV_TOKEN_BYTES = 2 * 2 * 2 * 32 * 4


def test_mbu_and_tokens_per_second_follow_from_the_measured_steps(tmp_path: Path) -> None:
    out = tmp_path / "hf.json"
    bandwidth = 1e9
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--device", "cpu", "--model", "tiny",
         "--batch", "2", "--prompt", "16", "--new", "4", "--hbm-bandwidth", str(bandwidth)],
        check=True, capture_output=True, timeout=240, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["params"] == PARAMS
    assert (result["prompt"], result["new_tokens"]) == (16, 4)
    row = result["eager_b2"]
    # A decode step at the mean context 16 + 4 // 2 = 18: read both sequences' 18 tokens of KV
    # and the weights, write one token of KV per sequence.
    step_bytes = WEIGHT_BYTES + 2 * 18 * KV_TOKEN_BYTES + 2 * KV_TOKEN_BYTES
    decode_s, step_s = row["decode_step_ms"] / 1e3, row["step_ms"] / 1e3
    assert row["decode_mbu"] == pytest.approx(step_bytes / decode_s / bandwidth)
    assert row["mbu"] == pytest.approx(step_bytes / step_s / bandwidth)
    assert row["decode_tok_s"] == pytest.approx(2 / decode_s)
    assert row["tok_s"] == pytest.approx(2 / step_s)
    # The prefill and the 3 decode steps fit inside the whole call.
    assert row["prefill_ms"] + 3 * row["decode_step_ms"] <= 4 * row["step_ms"]


def test_without_transformers_it_says_so_and_exits_3(tmp_path: Path) -> None:
    out = tmp_path / "hf.json"
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / "transformers.py").write_text("raise ImportError('blocked for the test')\n")
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--device", "cpu", "--model", "tiny"],
        capture_output=True, text=True, timeout=120, check=False,
        env={"PYTHONPATH": str(blocker), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == 3
    assert json.loads(out.read_text()) == {
        "skipped": "transformers not importable: blocked for the test"
    }
