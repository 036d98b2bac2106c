"""`gpumetrics worker` through click's CliRunner: a quick CPU run, and bad input (exit 2).

The argument checks run before torch is imported; the tests that run the worker skip
without torch.
"""

from __future__ import annotations

import json
import sys
import urllib.request

import pytest
from click.testing import CliRunner

from gpumetrics.cli import cli
from gpumetrics.cli.worker import _ATTENTION_PATHS, _FAST_DECODE_MODES

SUMMARY_KEYS = {
    "steps",
    "prompt_tokens",
    "generated_tokens",
    "prefix_query_tokens",
    "prefix_hit_tokens",
    "evicted_blocks",
    "recomputed_tokens",
    "preemptions",
    "mean_batch_occupancy",
    "tokens_per_second",
    "attention_path",
}


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["worker", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_quick_cpu_run_prints_the_summary() -> None:
    pytest.importorskip("torch", reason="the worker needs torch")
    code, out, err = _run("--device", "cpu", "--model", "tiny", "--requests", "20", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["requests"] == 20
    assert summary["steps"] > 0
    assert summary["generated_tokens"] > 0
    assert summary["tokens_per_second"] > 0
    assert summary["prefix_hit_tokens"] > 0  # turns 2+ and shared system prompts hit
    assert summary["attention_path"] == "sdpa"


def test_the_table_output_and_a_served_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch", reason="the worker needs torch")
    from gpumetrics.hooks import endpoint  # noqa: PLC0415

    scraped: list[bytes] = []
    close = endpoint.MetricsEndpoint.close

    def scrape_then_close(self: endpoint.MetricsEndpoint) -> None:
        with urllib.request.urlopen(self.url, timeout=5) as response:
            scraped.append(response.read())
        close(self)

    monkeypatch.setattr(endpoint.MetricsEndpoint, "close", scrape_then_close)
    code, out, err = _run("--requests", "3", "--attention", "eager", "--serve", "127.0.0.1:0")
    assert code == 0, err
    assert "serving engine metrics at http://127.0.0.1:" in err
    assert "evicted_blocks" in out
    assert "eager" in out
    assert b"gpumetrics_engine_finished_requests_total" in scraped[0]


def test_an_unknown_preset_is_a_usage_error() -> None:
    code, _, err = _run("--model", "no-such-model", "--requests", "1")
    assert code == 2
    assert "no-such-model" in err


def test_an_unknown_device_is_a_usage_error() -> None:
    code, _, err = _run("--device", "tpu", "--requests", "1")
    assert code == 2
    assert "tpu" in err


def test_cuda_without_cuda_is_a_clear_usage_error() -> None:
    torch = pytest.importorskip("torch", reason="the worker needs torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    code, _, err = _run("--device", "cuda", "--requests", "1")
    assert code == 2
    assert "no CUDA device" in err
    assert "--device cpu" in err


@pytest.mark.parametrize(
    "args",
    [
        ("--requests", "2", "--duration", "1"),
        ("--requests", "0"),
        ("--serve", "nowhere"),
        ("--attention", "flash"),
        ("--fast-decode", "maybe"),
    ],
)
def test_bad_arguments_are_usage_errors(args: tuple[str, ...]) -> None:
    code, _, _ = _run(*args)
    assert code == 2


def test_without_torch_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import now raises ImportError
    code, _, err = _run("--requests", "1")
    assert code == 2
    assert err.strip().splitlines() == [
        "Error: gpumetrics worker needs the 'worker' extra: pip install 'gpumetrics[worker]'"
    ]


def test_the_cli_lists_the_workers_attention_paths() -> None:
    attention = pytest.importorskip("gpumetrics.worker.attention", reason="needs torch")
    assert attention.ATTENTION_PATHS == _ATTENTION_PATHS


def test_the_cli_lists_the_fast_decode_modes() -> None:
    fast_decode = pytest.importorskip("gpumetrics.worker.fast_decode", reason="needs torch")
    assert fast_decode.FAST_DECODE_MODES == _FAST_DECODE_MODES


def test_fast_decode_on_runs_the_graph_safe_step_on_cpu() -> None:
    pytest.importorskip("torch", reason="the worker needs torch")
    code, out, err = _run("--model", "tiny", "--requests", "6", "--fast-decode", "on", "--json")
    assert code == 0, err
    assert json.loads(out)["attention_path"] == "fast-decode+sdpa"


def test_a_mixture_of_experts_preset_is_refused() -> None:
    pytest.importorskip("torch", reason="the worker needs torch")
    code, _, err = _run("--model", "mixtral-8x7b", "--requests", "1")
    assert code == 2
    assert "mixture-of-experts" in err


def test_virtual_clock_runs_repeat_exactly() -> None:
    pytest.importorskip("torch", reason="the worker needs torch")
    args = ("--kv-blocks", "24", "--max-batch", "8", "--requests", "20", "--seed", "2")
    runs = []
    for _ in range(2):
        code, out, err = _run(*args, "--virtual-clock", "--arrival-rate", "50", "--json")
        assert code == 0, err
        runs.append(json.loads(out))
    deterministic = SUMMARY_KEYS - {"tokens_per_second", "attention_path"}
    assert {k: runs[0][k] for k in deterministic} == {k: runs[1][k] for k in deterministic}
    assert runs[0]["prefix_hit_tokens"] > 0
