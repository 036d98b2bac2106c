"""Showing frames: one (`--once`), or one per interval until interrupted.

On a terminal the frame is redrawn in place (rich Live); into a pipe each frame is printed
after the previous one, plain text, so `top | tee log` keeps a readable record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rich.console import Console
from rich.live import Live

from .model import NodeView
from .render import frame

__all__ = ["show", "show_live"]


def _when() -> str:
    return time.strftime("%H:%M:%S")


def show(console: Console, view: NodeView) -> None:
    """Print one frame."""
    console.print(frame(view, when=_when()))


def show_live(
    console: Console,
    read: Callable[[], NodeView],
    interval_s: float,
    stop: threading.Event | None = None,
) -> None:
    """A frame every `interval_s` seconds from `read()` until `stop` is set (or Ctrl-C)."""
    stop = stop or threading.Event()
    if not console.is_terminal:
        while not stop.is_set():
            show(console, read())
            console.print()
            stop.wait(interval_s)
        return
    with Live(
        frame(read(), when=_when()), console=console, auto_refresh=False, transient=False
    ) as live:
        while not stop.wait(interval_s):
            live.update(frame(read(), when=_when()), refresh=True)
