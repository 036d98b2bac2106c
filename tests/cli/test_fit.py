"""`worker` and `profile` refuse a model that cannot fit, up front: one line, exit 2, and on
the CPU before torch is even imported (so it takes milliseconds, not a swapped-out machine)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
from click.testing import CliRunner

from gpumetrics.cli import cli

GIB = 2**30
WORKER = importlib.import_module("gpumetrics.cli.worker")  # the module, not the command

# Patch the host's MemAvailable to 16 GiB, run the command in-process, report torch's import.
_PROBE = """
import importlib, sys
m = importlib.import_module("{module}")  # where the check reads MemAvailable
m.host_memory_available = lambda: 16 * 2**30
from gpumetrics.cli import cli
try:
    cli({args!r})
except SystemExit as exc:
    print("exit", exc.code, "torch" in sys.modules)
"""


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("gpumetrics.cli.worker", ["worker", "--model", "llama-3-70b", "--device", "cpu"]),
        # llama-3-8b: 32 GB of fp32
        ("gpumetrics.cli.worker", ["worker", "--model", "llama-3-8b", "--device", "cpu"]),
        ("gpumetrics.profile.session", ["profile", "--model", "llama-3-70b"]),
    ],
)
def test_too_big_for_the_cpu_fails_before_torch_loads(module: str, args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module, args=args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.strip() == "exit 2 False", result.stderr
    (line,) = result.stderr.strip().splitlines()  # one line, printed once
    assert line.startswith(f"Error: {args[2]} does not fit: weights ")
    assert "this host (MemAvailable) has 16 GiB" in line


def test_a_model_that_fits_is_not_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch", reason="the worker needs torch")
    monkeypatch.setattr(WORKER, "host_memory_available", lambda: 16 * GIB)
    result = CliRunner().invoke(cli, ["worker", "--requests", "2", "--json"])
    assert result.exit_code == 0, result.stderr


def test_the_kv_pool_counts_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """tiny's weights are 0.6 MB, but 100,000 blocks x 16 tokens x 1 KiB of fp32 KV each
    (2·2·2·32·4 bytes a token) = 1.53 GiB do not fit in 1 GiB."""
    monkeypatch.setattr(WORKER, "host_memory_available", lambda: GIB)
    result = CliRunner().invoke(cli, ["worker", "--kv-blocks", "100000"])
    assert result.exit_code == 2
    assert "tiny does not fit" in result.stderr
    assert "KV 1.526 GiB" in result.stderr


def test_unknown_available_memory_does_not_block(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch", reason="the worker needs torch")
    monkeypatch.setattr(WORKER, "host_memory_available", lambda: None)
    result = CliRunner().invoke(cli, ["worker", "--requests", "1", "--json"])
    assert result.exit_code == 0, result.stderr
