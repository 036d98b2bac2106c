"""`gpumetrics roofline` through click's CliRunner: table, JSON, and bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpumetrics.cli import cli


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["roofline", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_for_llama_3_8b_on_h200() -> None:
    code, out, _ = _run(
        "--model",
        "llama-3-8b",
        "--gpu",
        "h200",
        "--batch",
        "1,8,64",
        "--context",
        "512,4096",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["schema"] == "gpumetrics.roofline/v1"
    assert data["gpu"]["name"] == "NVIDIA H200 SXM"
    assert [(r["batch"], r["context"]) for r in data["rows"]] == [
        (1, 512),
        (8, 512),
        (64, 512),
        (1, 4096),
        (8, 4096),
        (64, 4096),
    ]
    for row in data["rows"]:
        for key in (
            "flops",
            "bytes",
            "arithmetic_intensity",
            "predicted_step_seconds",
            "bound",
            "kv_bytes",
            "fits",
        ):
            assert key in row
        assert row["bound"] == "memory"  # decode of an 8B model on H200 is memory-bound
    # Batch 1 at context 512: weights (7.5e9 params in matmuls + LM head, bf16) dominate.
    first = data["rows"][0]
    assert first["predicted_step_seconds"] == pytest.approx(first["bytes"] / 4.8e12)
    assert data["gpu"]["ridge"] == pytest.approx(989.4e12 / 4.8e12)


def test_table_marks_cells_and_prints_a_verdict() -> None:
    code, out, _ = _run(
        "--model",
        "llama-3-8b",
        "--gpu",
        "NVIDIA H200",
        "--batch",
        "1,64,256,2048,4096",
        "--context",
        "512,4096",
    )
    assert code == 0
    assert "ridge 206 FLOP/byte" in out
    assert "largest fit" in out
    assert "1st compute-bound" in out  # batch 4096 at context 512 crosses 206 FLOP/B
    assert "context 4096: memory-bound at every batch size" in out


def test_nvml_device_name_and_overrides() -> None:
    code, out, _ = _run(
        "--gpu",
        "NVIDIA H100 80GB HBM3",
        "--hbm-bandwidth",
        "1T",
        "--peak-flops",
        "100T",
        "--json",
        "--batch",
        "1",
        "--context",
        "8",
    )
    assert code == 0
    gpu = json.loads(out)["gpu"]
    assert gpu["hbm_bandwidth"] == 1e12
    assert gpu["peak_flops"] == 100e12
    assert "user overrides" in gpu["source"]


def test_gpu_spec_file(tmp_path: Path) -> None:
    spec = tmp_path / "gpu.toml"
    spec.write_text(
        'name = "Lab GPU"\nhbm_bandwidth = 1e12\nmemory_bytes = 4e10\n[peak_flops]\nbf16 = 2e14\n'
    )
    code, out, _ = _run("--gpu-spec", str(spec), "--json", "--batch", "1", "--context", "64")
    assert code == 0, out
    assert json.loads(out)["gpu"]["ridge"] == pytest.approx(200.0)


def test_hf_config_path(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "hidden_size": 64,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "num_hidden_layers": 2,
                "intermediate_size": 128,
                "vocab_size": 100,
            }
        )
    )
    code, out, _ = _run("--model", str(config), "--gpu", "h100-sxm", "--json")
    assert code == 0
    assert json.loads(out)["model"]["kv_bytes_per_token"] == 2 * 2 * 2 * 16 * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--batch", "0"), "must be positive"),
        (("--batch", "-4"), "must be positive"),
        (("--context", "abc"), "not an integer"),
        (("--gpu", "t4"), "Known GPUs: a100-40gb"),
        (("--model", "llama-9"), "Presets:"),
        (("--tp", "0"), "--tp"),
        (("--gpu", "a100-80gb", "--dtype", "fp8"), "has no fp8 peak"),
        (("--hbm-bandwidth", "fast"), "not a number"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(args: tuple[str, ...], message: str) -> None:
    code, _, err = _run(*args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_missing_config_field_is_named(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"num_attention_heads": 4}))
    code, _, err = _run("--model", str(config))
    assert code == 2
    assert "hidden_size" in err
    assert str(config) in err


def test_render_check_reports_drift(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["render", "--root", str(tmp_path), "--check"]).exit_code == 1
    assert runner.invoke(cli, ["render", "--root", str(tmp_path)]).exit_code == 0
    assert runner.invoke(cli, ["render", "--root", str(tmp_path), "--check"]).exit_code == 0


def test_tp_that_does_not_divide_the_heads_is_refused(tmp_path: Path) -> None:
    """40 heads at --tp 3: vLLM refuses it, so does the planner (one line, exit 2)."""
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "hidden_size": 5120,
                "num_attention_heads": 40,
                "num_key_value_heads": 8,
                "num_hidden_layers": 40,
                "intermediate_size": 13824,
                "vocab_size": 152064,
            }
        )
    )
    code, out, err = _run("--model", str(config), "--tp", "3")
    assert code == 2
    assert out == ""
    (line,) = [x for x in err.splitlines() if x.startswith("Error:")]
    assert "3 does not divide the 40 attention heads" in line
    assert "Traceback" not in err


def test_reserve_is_shown_and_in_the_json() -> None:
    code, out, _ = _run(
        "--model", "llama-3-70b", "--gpu", "h200", "--batch", "1", "--context", "512"
    )
    assert code == 0
    assert "reserve 1.685 GiB (activations of a prefill chunk of 8,192 tokens)" in out
    code, out, _ = _run("--gpu", "h200", "--batch", "1", "--context", "512", "--json")
    data = json.loads(out)
    assert data["reserve_bytes"] == 2**30
    assert data["reserve_why"].startswith("at least 1 GiB")
    assert data["gpu"]["memory_bytes"] == 150_754_820_096
    h200 = 150_754_820_096
    assert data["kv_budget_bytes"] == pytest.approx(h200 * 0.9 - 16_060_522_496 - 2**30)
