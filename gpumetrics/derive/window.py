"""Rates and averages over a sliding window of samples, as `serve`'s derived gauges use them.

Pure: no clock, no I/O; every timestamp (seconds, any epoch) is passed in.

PromQL's `rate(c[w])` evaluated at `t` takes the samples of `c` in the window ending at `t`,
adds up their increases with every decrease read as a counter reset (the increase across a
reset is the new value: the counter restarted from zero), and divides by `w` after
extrapolating the sampled span towards the window's edges. `window_rate` here takes the same
reset-aware increase and divides by the span the samples actually cover (last − first time):
the exporter knows when it took each sample, so it does not guess beyond them. When the samples
reach both edges of the window (they do once the window is full: the gap to each edge is under
one sampling interval), PromQL's extrapolation scales the increase by w / span and then divides
by w, so the two give the same number. A ratio of two counters sampled together (hit/queried,
FLOPs/bytes) is the same either way, since both get the same factor.

`CounterTotal` keeps one counter's reset-adjusted running total; `Window` keeps (time, value)
points of the last `seconds` and answers rate (of a running total) and mean (of a gauge), each
in O(1) per point.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Sequence

from .rates import CounterPoint, counter_delta

__all__ = [
    "CounterTotal",
    "Window",
    "format_window",
    "parse_window",
    "reset_adjusted_increase",
    "window_rate",
]

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_window(text: str) -> float:
    """Seconds in a Prometheus-style duration: "5m" -> 300, "1h30m" -> 5400, "30s" -> 30.

    Whole units only (d, h, m, s, largest first), as in rule names; ValueError otherwise.
    """
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a duration such as 30s, 5m or 1h")
    seconds = sum(int(n) * unit for n, (_, unit) in zip(match.groups(), _UNITS, strict=True) if n)
    if seconds <= 0:
        raise ValueError(f"{text!r}: a window must be longer than 0s")
    return float(seconds)


def format_window(seconds: float) -> str:
    """The `window` label for a span: 300 -> "5m", 90 -> "1m30s", 3600 -> "1h"."""
    whole = round(seconds)
    if whole <= 0 or abs(whole - seconds) > 1e-9:
        raise ValueError(f"a window is a whole number of seconds > 0, got {seconds}")
    parts = []
    for suffix, unit in _UNITS:
        count, whole = divmod(whole, unit)
        if count:
            parts.append(f"{count}{suffix}")
    return "".join(parts)


def reset_adjusted_increase(values: Iterable[float]) -> float:
    """Increase over successive raw counter values, a decrease counting as a reset to zero.

    The same sum PromQL's rate()/increase() make before extrapolating:
    [10, 15, 3, 8] -> 5 + 3 + 5 = 13.
    """
    total = 0.0
    previous: float | None = None
    for value in values:
        if previous is not None:
            total += counter_delta(previous, value)
        previous = value
    return total


def window_rate(points: Sequence[CounterPoint], end: float, seconds: float) -> float | None:
    """Per-second increase of a counter over the points with end − seconds <= time <= end.

    Reset-aware increase divided by the span the points cover; None with fewer than two
    points in the window or no time between them. O(n): `Window` is the incremental form.
    """
    inside = [p for p in points if end - seconds <= p.timestamp <= end]
    if len(inside) < 2 or inside[-1].timestamp <= inside[0].timestamp:
        return None
    span = inside[-1].timestamp - inside[0].timestamp
    return reset_adjusted_increase(p.value for p in inside) / span


class CounterTotal:
    """A counter's running total with resets taken out (monotone, starts at 0).

    `update(raw)` returns the total after adding the increase from the previous raw value
    (a decrease is a reset: the new raw value is the increase). Summing the totals of several
    series then gives a series whose rate is the sum of their rates, as `sum(rate(...))` does.
    """

    __slots__ = ("_raw", "_total")

    def __init__(self) -> None:
        self._raw: float | None = None
        self._total = 0.0

    def update(self, raw: float) -> float:
        if self._raw is not None:
            self._total += counter_delta(self._raw, raw)
        self._raw = raw
        return self._total

    @property
    def total(self) -> float:
        return self._total


class Window:
    """(time, value) points of the last `seconds`, counted back from the newest point.

    For a running total (`CounterTotal`): `rate()`. For a gauge: `mean()`, the average of the
    samples in the window, as PromQL's avg_over_time() takes it. A point older than the newest
    is ignored (time does not go backwards within one source).
    """

    __slots__ = ("_points", "_seconds", "_sum")

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"a window must be > 0 s, got {seconds}")
        self._seconds = seconds
        self._points: deque[tuple[float, float]] = deque()
        self._sum = 0.0

    @property
    def seconds(self) -> float:
        return self._seconds

    def add(self, timestamp: float, value: float) -> None:
        points = self._points
        if points and timestamp < points[-1][0]:
            return
        points.append((timestamp, value))
        self._sum += value
        start = timestamp - self._seconds
        while points[0][0] < start:
            self._sum -= points.popleft()[1]
        if len(points) == 1:
            self._sum = value  # no drift from long add/subtract chains

    def __len__(self) -> int:
        return len(self._points)

    def span(self) -> float:
        """Seconds between the oldest and the newest point in the window (0 with one)."""
        return self._points[-1][0] - self._points[0][0] if self._points else 0.0

    def rate(self) -> float | None:
        """(newest − oldest value) / span: the per-second increase of a running total;
        None with fewer than two points or no time between them."""
        span = self.span()
        if len(self._points) < 2 or span <= 0:
            return None
        return (self._points[-1][1] - self._points[0][1]) / span

    def mean(self) -> float | None:
        """Average of the values in the window; None when it is empty."""
        if not self._points:
            return None
        return self._sum / len(self._points)
