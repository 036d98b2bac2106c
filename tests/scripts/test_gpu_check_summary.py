"""scripts/gpu_check_summary.py against hand-made inputs whose answers are worked out here: the
profile table, the worker/HF ratio, the per-phase GPM medians, the phases parser, and a
summary that survives missing or broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gpu_check_summary import gpm_medians, hf_ratio, parse_phases, profile_rows, summary_lines

T0 = 1796383796.0


def _cell(batch: int, context: int, tps: float, p50: float, mbu: float) -> dict[str, object]:
    return {
        "label": f"b{batch}/c{context}",
        "phase": "decode",
        "batch": batch,
        "context": context,
        "status": "ok",
        "step_seconds_p50": p50,
        "predicted_step_seconds": 0.00097,
        "tokens_per_second": tps,
        "mbu": mbu,
        "mfu": 0.013,
        "mbu_achievable": None,
    }


def _scrape(tensor: float, dram: float) -> str:
    labels = 'gpu="0",gpu_uuid="GPU-x",gpu_model="NVIDIA H200"'
    other = 'gpu="1",gpu_uuid="GPU-y",gpu_model="NVIDIA H200"'
    return (
        "# TYPE gpumetrics_gpu_tensor_active_ratio gauge\n"
        f"gpumetrics_gpu_tensor_active_ratio{{{labels}}} {tensor}\n"
        f"gpumetrics_gpu_tensor_active_ratio{{{other}}} 0.5\n"
        "# TYPE gpumetrics_gpu_dram_active_ratio gauge\n"
        f"gpumetrics_gpu_dram_active_ratio{{{labels}}} {dram}\n"
    )


PHASES = f"""{T0:.2f} idle
{T0 + 4:.2f} gemm
{T0 + 8:.2f} gemm_end tflops=654.2
{T0 + 10:.2f} copy
{T0 + 14:.2f} copy_end TBps_rw=4.28
{T0 + 16:.2f} end
"""


def test_parse_phases_reads_marks_and_numbers() -> None:
    marks = parse_phases("# recorded by hand\n" + PHASES + "\n")
    assert [m[1] for m in marks] == ["idle", "gemm", "gemm_end", "copy", "copy_end", "end"]
    assert marks[2] == (T0 + 8, "gemm_end", {"tflops": "654.2"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1796383796.00 idle\n1796383790.00 gemm\n", "not in time order"),
        ("1796383796.00 idle extra\n", "line 1 is not"),
        ("idle 1796383796.00\n", "line 1 is not"),
    ],
)
def test_parse_phases_rejects_malformed_files(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_phases(text)


def test_gpm_medians_take_gpu_0_inside_each_phase_after_settling() -> None:
    marks = parse_phases(PHASES)
    scrapes = [
        (T0 + 4.5, _scrape(0.0, 0.0)),  # gemm, but inside its first second: left out
        (T0 + 5.5, _scrape(0.90, 0.16)),
        (T0 + 6.5, _scrape(0.95, 0.18)),
        (T0 + 7.5, _scrape(0.93, 0.17)),
        (T0 + 9.0, _scrape(0.40, 0.40)),  # gemm_end: no phase of the table
        (T0 + 12.0, _scrape(0.0, 0.89)),
        (T0 + 13.0, _scrape(0.0, 0.87)),
    ]
    med = gpm_medians(scrapes, marks)
    assert set(med) == {"idle", "gemm", "copy"}
    assert med["gemm"] == {"tensor": 0.93, "DRAM": 0.17}
    assert med["copy"] == {"tensor": 0.0, "DRAM": pytest.approx(0.88)}
    assert med["idle"] == {}


def test_hf_ratio_compares_at_the_largest_common_batch_and_shortest_context() -> None:
    rows = profile_rows(
        {"cells": [_cell(64, 4096, 3000.0, 0.02, 0.1), _cell(64, 1024, 5054.0, 0.0127, 0.077)]},
        {"cells": [_cell(1, 1024, 55.0, 0.0182, 0.029)]},
    )
    assert [(r["batch"], r["context"]) for r in rows] == [(1, 1024), (64, 1024), (64, 4096)]
    hf = {
        "eager_b1": {"batch": 1, "decode_tok_s": 25.0, "tok_s": 20.2},
        "eager_b64": {"batch": 64, "decode_tok_s": 1264.0, "tok_s": 1220.0},
    }
    assert hf_ratio(rows, hf) == ("b64/c1024", 5054.0, 1264.0, 1220.0)
    with pytest.raises(ValueError, match="no batch size measured by both"):
        hf_ratio(rows, {"eager_b16": {"batch": 16, "decode_tok_s": 1.0, "tok_s": 1.0}})
    with pytest.raises(ValueError, match="no HF generate results"):
        hf_ratio(rows, None)


def test_summary_renders_the_tables_for_benchmarks_md(tmp_path: Path) -> None:
    (tmp_path / "profile-short.json").write_text(
        json.dumps({"cells": [_cell(64, 1024, 5054.0, 0.0127, 0.077)]})
    )
    (tmp_path / "hf-generate.json").write_text(
        json.dumps(
            {
                "transformers": "5.17.0",
                "prompt": 1024,
                "new_tokens": 32,
                "eager_b64": {
                    "batch": 64,
                    "decode_tok_s": 1264.0,
                    "tok_s": 1220.0,
                    "decode_step_ms": 50.63,
                    "decode_mbu": 0.0185,
                },
            }
        )
    )
    (tmp_path / "trace-phases.txt").write_text(PHASES)
    (tmp_path / "trace").mkdir()
    (tmp_path / "trace" / f"s0000_{T0 + 6:.2f}.prom").write_text(_scrape(0.93, 0.17))
    steps = [{"name": "env", "status": "ok", "reason": "", "seconds": 12.0}]
    lines = summary_lines(tmp_path, steps, "gpu-check test")
    assert lines[0] == "gpu-check test"
    assert "  env            ok          12.0 s" in lines
    # 12.7 ms p50, 0.97 ms roof, 5,054 tokens/s, MBU 7.7 %, MFU 1.3 %.
    assert "| 1024 | 64 | 12.70 | 0.970 | 5,054 | 7.7 % | 1.3 % | n/a |" in lines
    # 5054 / 1264 = 4.00x on decode alone; 5054 / 1220 = 4.14x end to end.
    ratio = next(line for line in lines if line.startswith("HF `generate`"))
    assert "-> 4.00x" in ratio
    assert "-> 4.14x" in ratio
    assert "| gemm | 0.93 | 0.17 | n/a | n/a | n/a |" in lines
    assert any("matmul 654.2 TFLOP/s, copy 4.28 TB/s" in line for line in lines)


def test_summary_survives_missing_and_broken_files(tmp_path: Path) -> None:
    (tmp_path / "profile-short.json").write_text("{truncated")
    (tmp_path / "trace-phases.txt").write_text("not a phase line\n")
    (tmp_path / "hf-generate.json").write_text(json.dumps({"skipped": "no transformers"}))
    lines = summary_lines(tmp_path, [], "h")
    assert "no profile results" in lines
    assert "HF generate: skipped (no transformers)" in lines
    assert any(line.startswith("trace: phases line 1 is not") for line in lines)
