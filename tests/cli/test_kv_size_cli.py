"""`gpumetrics kv-size` through click's CliRunner: the Mooncake verdict, every output, and
bad input as one-line errors with exit code 2."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpumetrics.cli import cli
from gpumetrics.kvsize import ReadReport, concat, exact_curve, read_trace

MOONCAKE = Path(__file__).resolve().parent.parent / "data" / "mooncake"
TRACE = MOONCAKE / "conversation_trace.jsonl.gz"


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["kv-size", *args])
    return result.exit_code, result.stdout, result.stderr


def _lines(path: Path, records: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_mooncake_verdict_for_llama_3_70b_on_h200() -> None:
    code, out, err = _run(
        "--trace", str(TRACE), "--format", "mooncake", "--model", "llama-3-70b",
        "--gpu", "h200", "--target", "0.9",
    )  # fmt: skip
    assert code == 0, err
    assert "12,031 requests, 288,500 block lookups of 512 tokens, 182,790 distinct" in out
    assert "<- target" in out
    assert "verdict: 90% of the infinite-cache hit ratio (0.3298 of 0.3664) needs 31,435" in out
    assert "NVIDIA H200 SXM at TP2 after weights" in out
    assert "twice that (62,870 blocks)" in out
    assert err == ""


def test_json_rows_equal_the_exact_curve(tmp_path: Path) -> None:
    code, out, _ = _run(
        "--trace", str(TRACE), "--model", "llama-3-8b", "--gpu", "h100-sxm",
        "--capacity", "1,1000,30000", "--json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    curve = exact_curve(concat(read_trace(TRACE, ReadReport("t"))))
    assert data["trace"]["format"] == "mooncake"
    assert data["trace"]["malformed_lines"] == 0
    assert data["max_hit_ratio"] == curve.max_hit_ratio
    blocks = [r["capacity_blocks"] for r in data["rows"]]
    target = data["target_row"]["capacity_blocks"]
    assert blocks == sorted([1, 1000, 30000, target])
    for row in data["rows"]:
        c = row["capacity_blocks"]
        assert row["capacity_tokens"] == 512 * c
        assert row["hit_ratio"] == float(curve.hit_ratio(c))
        assert row["max_hit_ratio"] == curve.max_hit_ratio
    assert data["costs"]["tp"] == 1


def test_csv_plot_and_html(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png, page = tmp_path / "c.png", tmp_path / "c.html"
    code, out, _ = _run("--trace", str(TRACE), "--csv", "--plot", str(png), "--html", str(page))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["capacity_blocks"] == "1"
    assert float(rows[0]["hit_ratio"]) == pytest.approx(12_030 / 288_500)
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "data:image/png;base64," in page.read_text()


def test_sampled_mode(tmp_path: Path) -> None:
    code, out, _ = _run("--trace", str(TRACE), "--sample-rate", "0.1", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["trace"]["sample_rate"] == pytest.approx(0.1, rel=1e-6)
    assert 0 < data["trace"]["sampled_lookups"] < 288_500
    assert abs(data["max_hit_ratio"] - 0.3664) < 0.03
    code, out, _ = _run(
        "--trace", str(TRACE), "--sample-rate", "0.1", "--sample-seed", "3", "--json"
    )
    assert code == 0
    other = json.loads(out)
    assert other["trace"]["sampled_lookups"] != data["trace"]["sampled_lookups"]


def test_malformed_lines_warn_with_line_numbers(tmp_path: Path) -> None:
    good = {"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [0, 1]}
    path = _lines(tmp_path / "t.jsonl", [good, "{oops", good, {"timestamp": 1}])
    code, _out, err = _run("--trace", str(path))
    assert code == 0
    assert err.count("\n") == 1
    assert err.startswith("warning: 2 malformed lines left out of ")
    assert "line 2: not JSON" in err
    assert "line 4: " in err
    code, _, err = _run("--trace", str(path), "--strict")
    assert code == 2
    assert "2 malformed lines" in err


def _error(*args: str) -> str:
    code, out, err = _run(*args)
    assert code == 2, (out, err)
    assert out == ""
    message = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(message) == 1
    return message[0]


def test_bad_input_is_a_one_line_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "holds no requests" in _error("--trace", str(empty))
    junk = _lines(tmp_path / "junk.jsonl", ["nope", "{}"])
    line = _error("--trace", str(junk))
    assert "holds no requests (2 malformed lines" in line
    assert "line 1: not JSON" in line
    assert "must be positive" in _error("--trace", str(TRACE), "--capacity", "0,10")
    for rate in ("0", "1.5", "-0.1"):
        assert "sample-rate: must be in (0, 1]" in _error(
            "--trace", str(TRACE), "--sample-rate", rate
        )
    assert "--target: must be in (0, 1]" in _error("--trace", str(TRACE), "--target", "0")
    assert "--gpu needs --model" in _error("--trace", str(TRACE), "--gpu", "h200")
    assert "unknown model" in _error("--trace", str(TRACE), "--model", "nope")
    assert "--json or --csv" in _error("--trace", str(TRACE), "--json", "--csv")
    assert "does not exist" in _error("--trace", str(tmp_path / "missing.jsonl"))


def test_text_conversations_use_the_byte_tokenizer(tmp_path: Path) -> None:
    """The worker's byte tokenizer is imported only for text prompts (it pulls torch)."""
    pytest.importorskip("torch")
    prompt = "You are a helpful assistant. " * 4
    lines = [{"prompt": prompt + "Hi", "timestamp": 0}, {"prompt": prompt + "Yo", "timestamp": 1}]
    code, out, _ = _run("--trace", str(_lines(tmp_path / "c.jsonl", lines)), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["trace"]["format"] == "conversations"
    assert data["trace"]["block_size"] == 16
    # 118 bytes: 7 full blocks each; the second request hits the 7 it shares
    assert data["trace"]["block_lookups"] == 14
    assert data["max_hit_ratio"] == 7 / 14


def test_formats_spelled_out_in_the_command_match_the_reader() -> None:
    from gpumetrics.cli.kv_size import FORMATS  # noqa: PLC0415
    from gpumetrics.kvsize.records import FORMATS as READER_FORMATS  # noqa: PLC0415

    assert FORMATS == READER_FORMATS
