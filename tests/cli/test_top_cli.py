"""`gpumetrics top` as a user runs it: one frame into a pipe (parsed back and checked against
what the sources define), live in a real pseudo-terminal until Ctrl-C, against a real
`serve`, and its input errors (one line, exit 2)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import urllib.request
from pathlib import Path

import pytest

from gpumetrics.testing.fabric import FabricRates
from gpumetrics.testing.workloads import STEADY_RATES

from ..integration.servers import wait_for
from ..integration.sidecar import gpumetrics_serve
from ..integration.steady import steady_engine

TOP = [sys.executable, "-m", "gpumetrics", "top"]
NVLINK_LINKS, H200_NVLINK = 18, 900e9
IB_LINE_RATE = 400e9 / 8


def _top(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run(
        [*TOP, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def _rows(text: str) -> dict[str, list[str]]:
    """Table rows by their first cell (GPU index, engine name, IB port)."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        cells = line.split()
        if cells and (cells[0].isdigit() or "/" in cells[0] or cells[0] == "e0"):
            rows.setdefault(cells[0], cells)
    return rows


def _percent(cell: str) -> float:
    return float(cell.removesuffix("%")) / 100


def test_once_into_a_pipe_is_plain_text_with_the_sources_numbers() -> None:
    result = _top("--once", "--fake-gpus", "h200x2", "--fake-ib", "1", "--interval", "1")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    rows = _rows(result.stdout)
    nvlink = (
        NVLINK_LINKS
        * (STEADY_RATES.nvlink_tx_bytes_per_second + STEADY_RATES.nvlink_rx_bytes_per_second)
        / H200_NVLINK
    )
    for gpu in ("0", "1"):
        naive, sm, tensor, dram, mfu, mbu, link = rows[gpu][1:8]
        assert _percent(naive) == STEADY_RATES.utilization_gpu
        assert _percent(sm) == STEADY_RATES.sm_active
        assert _percent(tensor) == STEADY_RATES.tensor_active
        assert _percent(dram) == STEADY_RATES.dram_active
        assert (mfu, mbu) == ("-", "-")  # no engine runs on the fake GPUs
        assert _percent(link) == pytest.approx(nvlink, abs=0.0015)
    tx, rx = rows["mlx5_0/1"][1:3]
    assert _percent(tx) == pytest.approx(FabricRates().tx_bytes_per_second / IB_LINE_RATE, abs=1e-3)
    assert _percent(rx) == pytest.approx(FabricRates().rx_bytes_per_second / IB_LINE_RATE, abs=1e-3)
    assert "derived over 5m" in result.stdout


def _engine_gauges_ready(port: int) -> bool:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return b"gpumetrics_engine_batch_occupancy_ratio{" in response.read()


@pytest.mark.slow
def test_once_against_serve_shows_the_engine(tmp_path: Path) -> None:
    """The steady hooks engine (tests/integration/steady.py) behind a real serve: 30 of 100
    prompt tokens hit; mean batch (4 + 4 x 32) / 5 = 26.4 of 64; KV at 0.55; 6.25 % of
    FLOPs recompute; 50 steps/s of 105.6 tokens each; intensity 6.4e12 / 1.8408e11 FLOP/B,
    under the bf16 ridge of an H200."""
    with (
        steady_engine() as engine_url,
        gpumetrics_serve(
            tmp_path,
            "--fake-gpus",
            "h200x2",
            "--fake-workload",
            "steady",
            "--no-infiniband",
            "--engine",
            f"e0={engine_url},kind=gpumetrics,gpus=0",
            "--interval",
            "0.25",
            "--derived-window",
            "5s",
        ) as port,  # fmt: skip
    ):
        wait_for(lambda: _engine_gauges_ready(port), 30, "the engine's derived gauges")
        full = time.monotonic() + 6  # the 5 s window filled: a partial one cuts the pattern
        wait_for(lambda: time.monotonic() > full, 30, "a full derived window")
        result = _top("--once", "--url", f"http://127.0.0.1:{port}/metrics")
    assert result.returncode == 0, result.stderr
    cells = _rows(result.stdout)["e0"]
    assert cells[1] == "steady"
    occupancy, kv, hit, recompute, preempt, waiting, tokens = cells[2:9]
    assert _percent(occupancy) == pytest.approx(26.4 / 64, abs=0.005)
    assert _percent(kv) == pytest.approx(0.55, abs=0.001)
    assert _percent(hit) == pytest.approx(0.30, abs=0.001)
    assert _percent(recompute) == pytest.approx(0.0625, abs=0.002)
    assert (preempt, waiting) == ("0", "-")
    assert tokens.endswith("k")
    # 50 x 105.6 = 5,280 tokens/s; a 400-token prefill step more or less in the window: 1.5 %
    assert float(tokens.removesuffix("k")) * 1e3 == pytest.approx(5280, rel=0.03)
    # The window's edges may cut the 5-step pattern: a step more or less moves it ~1 %.
    assert (cells[9], cells[11]) == ("memory", "F/B)")
    assert float(cells[10].removeprefix("(")) == pytest.approx(6.4e12 / 1.8408e11, rel=0.02)
    assert "derived over 5s" in result.stdout


def test_live_in_a_pseudo_terminal_until_ctrl_c() -> None:
    """A real pty: rich draws in colour and redraws in place; Ctrl-C (the terminal's
    interrupt character) ends it with status 0 and no traceback."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a 50 x 200 terminal, then top
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
        env["TERM"] = "xterm-256color"
        os.execve(sys.executable, [*TOP, "--fake-gpus", "h200x2", "--interval", "0.3"], env)
    output = b""

    def read_for(seconds: float, until: bytes | None = None) -> None:
        nonlocal output
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (until is None or output.count(until) < 3):
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    output += os.read(fd, 65536)
                except OSError:  # the child closed the terminal
                    return

    try:
        read_for(60, until=b"gpumetrics top")  # three frames drawn
        assert output.count(b"gpumetrics top") >= 3, output[-2000:]
        os.write(fd, b"\x03")
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and status is None:
            read_for(0.2)
            done, code = os.waitpid(pid, os.WNOHANG)
            status = code if done else None
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    text = output.decode(errors="replace")
    assert status is not None, "top did not stop on Ctrl-C"
    assert os.waitstatus_to_exitcode(status) == 0, text[-2000:]
    assert "\x1b[" in text  # colour and cursor movement: a terminal frame, redrawn
    assert "tensor active" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cert-file", __file__], "--cert-file and --key-file go together"),
        (["--url", "localhost:9835"], "expected http:// or https://"),
        (["--basic-auth-password-file", "/nonexistent/pw"], "does not exist"),
        (["--fake-gpus", "t4x9"], "unknown fake GPU spec"),
        (["--fake-gpus", "h200x1", "--derived-window", "5 min"], "is not a duration"),
        (["--dtype", "fp12"], "'fp12' is not one of"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = _top("--once", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_endpoint_is_one_line_and_exit_1() -> None:
    result = _top("--once", "--url", "http://127.0.0.1:1/metrics")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: cannot read http://127.0.0.1:1/metrics: [Errno 111] Connection refused"
    ]
