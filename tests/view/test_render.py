"""Frames as text: formatting of each kind of cell, plain output without a terminal, colour
with one, and what a frame says when there is nothing or an error."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from gpumetrics.view import EngineRow, GpuRow, NodeView, PortRow, frame
from gpumetrics.view.render import percent, si

GPU = GpuRow("0", "NVIDIA H200", 1.0, 0.85, 0.22, 0.81, 0.31, 0.62, 0.387, 540.0, 1e11, 1.5e11)
ENGINE = EngineRow(
    "vllm-0", "llama", 0.4, 0.7, 0.3, 0.06, 66.0, 3.0, 2080.0, 34.7, 0.0, 0.065, 0.384, 0.7
)
VIEW = NodeView(
    "http://x/metrics", "bf16", "5m", (GPU,), (ENGINE,), (PortRow("mlx5_0/1", 0.4, None),)
)


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (0.0, "0.0%"), (0.0004, "<0.1%"), (0.4567, "45.7%"), (1.0, "100.0%")],
)
def test_percent(value: float | None, text: str) -> None:
    assert percent(value) == text


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(None, "", "-"), (66.0, "", "66"), (2080.0, "", "2.1k"), (540.0, "W", "540W"),
     (3.5e9, "", "3.5G"), (0.25, "", "0.25")],
)  # fmt: skip
def test_si(value: float | None, unit: str, text: str) -> None:
    assert si(value, unit) == text


def _text(view: NodeView, *, terminal: bool) -> str:
    out = io.StringIO()
    if terminal:
        console = Console(file=out, width=200, force_terminal=True, color_system="standard")
    else:  # what `top` gets in a pipe: rich decides by itself
        console = Console(file=out, width=200)
    console.print(frame(view, when="12:00:00"))
    return out.getvalue()


def _row(text: str, first: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.split()[:1] == [first])
    return line.split()


def test_plain_frame_holds_every_cell() -> None:
    text = _text(VIEW, terminal=False)
    assert "\x1b" not in text
    assert "derived over 5m" in text
    assert _row(text, "0") == [
        "0", "100.0%", "85.0%", "22.0%", "81.0%", "31.0%", "62.0%", "38.7%", "540W", "93/140GiB"
    ]  # fmt: skip
    assert _row(text, "vllm-0") == [
        "vllm-0", "llama", "40.0%", "70.0%", "30.0%", "6.0%", "66", "3", "2.1k",
        "memory", "(34.7", "F/B)", "6.5%", "38.4%", "70.0%",
    ]  # fmt: skip
    assert _row(text, "mlx5_0/1") == ["mlx5_0/1", "40.0%", "-"]
    assert "naive util: share of time any kernel ran" in text


def test_a_terminal_gets_colour() -> None:
    assert "\x1b[" in _text(VIEW, terminal=True)


def test_error_and_empty_frames() -> None:
    failed = NodeView("http://x/metrics", "bf16", None, (), (), (), error="HTTP 401 Unauthorized")
    text = _text(failed, terminal=False)
    assert "error: HTTP 401 Unauthorized" in text
    assert "derived gauges: none yet" in text
    empty = _text(NodeView("local", "bf16", None, (), (), (), down=("nvml",)), terminal=False)
    assert "no GPU, engine or IB series" in empty
    assert "sources down: nvml (`gpumetrics doctor` says why)" in empty
