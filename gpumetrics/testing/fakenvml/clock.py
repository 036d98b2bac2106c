"""A clock that moves only when told to: tests drive FakeNvml's workload with it."""

from __future__ import annotations

import threading

__all__ = ["ManualClock"]


class ManualClock:
    """A callable returning seconds; `advance(dt)` or `set(t)` moves it. Thread-safe.

    clock = ManualClock(1000.0)
    fake = FakeNvml("h100x8", clock=clock)
    clock.advance(2.0)
    """

    __slots__ = ("_lock", "_now")

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by `seconds` (>= 0); returns the new time."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        """Jump to `now` (not earlier than the current time)."""
        with self._lock:
            if now < self._now:
                raise ValueError("a clock does not go backwards")
            self._now = float(now)
