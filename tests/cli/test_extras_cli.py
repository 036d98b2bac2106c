"""Every command and option that needs an extra says which, in one line, with exit code 2,
before any work starts: the extra's library made unimportable (None in sys.modules), the CLI
run in-process. tests/test_packaging.py does the same in a real core-only install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpumetrics.cli import cli

TRACE = Path(__file__).resolve().parents[1] / "data" / "mooncake" / "conversation_trace.jsonl.gz"
HASH = "$2b$04$" + "a" * 53  # a bcrypt-shaped hash (never checked: serve stops before)


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, prog_name="gpumetrics")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("blocked", "args", "line"),
    [
        (
            "grafana_foundation_sdk",
            ["render", "--check"],
            "gpumetrics render needs the 'render' extra: pip install 'gpumetrics[render]'",
        ),
        (
            "opentelemetry.sdk.metrics",
            ["serve", "--fake-gpus", "a100", "--otlp-endpoint", "http://127.0.0.1:9"],
            "gpumetrics serve --otlp-endpoint needs the 'otel' extra: "
            "pip install 'gpumetrics[otel]'",
        ),
        (
            "numpy",
            ["kv-size", "--trace", str(TRACE), "--model", "llama-3-8b", "--gpu", "h200"],
            "gpumetrics kv-size needs the 'kvsize' extra: pip install 'gpumetrics[kvsize]'",
        ),
        (
            "matplotlib",
            ["kv-size", "--trace", str(TRACE), "--plot", "PLOT"],
            "gpumetrics kv-size --plot needs the 'plot' extra: pip install 'gpumetrics[plot]'",
        ),
        (
            "matplotlib",
            ["profile", "--plot", "PLOT"],
            "gpumetrics profile --plot needs the 'plot' extra: pip install 'gpumetrics[plot]'",
        ),
        (
            "torch",
            ["worker", "--requests", "1"],
            "gpumetrics worker needs the 'worker' extra: pip install 'gpumetrics[worker]'",
        ),
        (
            "torch",
            ["profile", "--batch", "1", "--context", "16"],
            "gpumetrics profile's sweep (or attach to an engine: --engine URL) needs the "
            "'worker' extra: pip install 'gpumetrics[worker]'",
        ),
    ],
    ids=["render", "serve-otlp", "kv-size", "kv-size-plot", "profile-plot", "worker", "profile"],
)
def test_a_missing_extra_is_one_line_and_exit_2(
    blocked: str,
    args: list[str],
    line: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setitem(sys.modules, blocked, None)
    monkeypatch.chdir(tmp_path)
    args = [str(tmp_path / "out.png") if a == "PLOT" else a for a in args]
    code, output = _run(args)
    assert code == 2, output
    assert output == f"Error: {line}\n"
    assert not (tmp_path / "out.png").exists()


def test_basic_auth_without_bcrypt_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  alice: '{HASH}'\n")
    monkeypatch.setitem(sys.modules, "bcrypt", None)
    code, output = _run(["serve", "--fake-gpus", "a100", "--web-config", str(web)])
    assert code == 2
    assert output == (
        "Error: basic auth (basic_auth_users in --web-config) needs the 'web' extra: "
        "pip install 'gpumetrics[web]'\n"
    )


def test_tls_alone_needs_no_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The web extra is bcrypt only: a web config without users passes `serve`'s checks with
    bcrypt unimportable (--print-config stops right after them)."""
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config: {}\n")
    monkeypatch.setitem(sys.modules, "bcrypt", None)
    args = ["serve", "--fake-gpus", "a100", "--web-config", str(web), "--print-config"]
    code, output = _run(args)
    assert code == 0, output
    assert '"web_config"' in output


def test_with_the_extra_present_the_same_check_passes(tmp_path: Path) -> None:
    """The check above can pass: with grafana's SDK importable, render runs (and finds every
    generated file missing from an empty directory)."""
    pytest.importorskip("grafana_foundation_sdk")
    code, output = _run(["render", "--check", "--root", str(tmp_path)])
    assert code == 1
    assert output.startswith("out of date: METRICS.md, dashboards/")
