"""How `serve` starts and stops: signals, one shutdown deadline, listen errors in one line.

Signals (docs/configuration.md, "Signals"):

- SIGTERM, SIGINT and SIGQUIT stop the exporter cleanly: the HTTP server closes, a last OTLP
  export is attempted, the sources stop and close, and the temp dirs of the demo fakes
  (`--fake-ib`'s sysfs tree) are removed; exit status 0.
- SIGHUP is logged and ignored. The settings are one frozen record built at start-up, so a
  reload would have to rebuild every source; restart the process to apply a new config (as
  systemd's `ExecReload` would with a restart, or `kubectl rollout restart`). Unlike Python's
  default (die without cleaning up), an accidental SIGHUP (a closed terminal) keeps serving.

Shutdown has one deadline, `SHUTDOWN_S` seconds, for everything together: whatever is left of
it after the server and the final OTLP export is what the sources get, all of them together
(`Sampler.stop`); a hung source is abandoned to its daemon thread at the deadline. 4 s leaves
the process a second to exit, so a stop signal ends it within 5 s.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Final

__all__ = [
    "SHUTDOWN_S",
    "SWITCH_INTERVAL_S",
    "Deadline",
    "signals_handled",
]

log = logging.getLogger("gpumetrics.serve")

#: Seconds from the stop signal to the end of shutdown, for all parts together.
SHUTDOWN_S: Final = 4.0
#: The GIL switch interval `serve` runs with (seconds; CPython's default is 0.005).
SWITCH_INTERVAL_S: Final = 0.001
#: Signals that stop the exporter cleanly.
STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


@contextmanager
def signals_handled(stop: threading.Event) -> Iterator[None]:
    """While inside: STOP_SIGNALS set `stop`, SIGHUP is logged and ignored. The previous
    handlers come back on the way out."""

    def on_stop(signum: int, _: FrameType | None) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    def on_hup(signum: int, _: FrameType | None) -> None:
        log.warning("SIGHUP received and ignored: restart gpumetrics serve to apply a new config")

    handlers: list[tuple[signal.Signals, Callable[[int, FrameType | None], object] | int | None]]
    handlers = [(signum, signal.signal(signum, on_stop)) for signum in STOP_SIGNALS]
    handlers.append((signal.SIGHUP, signal.signal(signal.SIGHUP, on_hup)))
    try:
        yield
    finally:
        for signum, previous in reversed(handlers):
            signal.signal(signum, previous)


class Deadline:
    """`seconds` from now on the monotonic clock; `left()` never goes below `floor`."""

    __slots__ = ("_at", "_floor")

    def __init__(self, seconds: float, *, floor: float = 0.0) -> None:
        self._at = time.monotonic() + seconds
        self._floor = floor

    def left(self) -> float:
        return max(self._floor, self._at - time.monotonic())
