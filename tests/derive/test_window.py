"""Windowed rates: durations, PromQL's reset rule, the incremental window against the direct
sum, and how the rate over the samples' span relates to PromQL's extrapolated rate()."""

from __future__ import annotations

import random

import pytest

from gpumetrics.derive import (
    CounterPoint,
    CounterTotal,
    Window,
    format_window,
    parse_window,
    reset_adjusted_increase,
    window_rate,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("30s", 30), ("1h", 3600), ("1h30m", 5400), ("90s", 90), ("1d", 86400)],
)
def test_parse_window(text: str, seconds: float) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "0s", "-1m", "1.5m", "5 m", "5ms", "30s5m"])
def test_parse_window_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|longer than 0s"):
        parse_window(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(300, "5m"), (30, "30s"), (90, "1m30s"), (3600, "1h"), (5400, "1h30m")]
)
def test_format_window(seconds: float, text: str) -> None:
    assert format_window(seconds) == text
    assert parse_window(text) == seconds


@pytest.mark.parametrize("seconds", [0, -5, 1.5])
def test_format_window_rejects(seconds: float) -> None:
    with pytest.raises(ValueError, match="whole number"):
        format_window(seconds)


def test_reset_adjusted_increase_is_promqls_sum() -> None:
    """Each decrease is a restart from zero: [10, 15, 3, 8] -> 5 + 3 + 5 = 13."""
    assert reset_adjusted_increase([10, 15, 3, 8]) == 13
    assert reset_adjusted_increase([7]) == 0
    assert reset_adjusted_increase([]) == 0
    assert reset_adjusted_increase([5, 0, 0, 4]) == 4


def test_window_rate_by_hand() -> None:
    points = [
        CounterPoint(100, 0),
        CounterPoint(150, 10),
        CounterPoint(30, 20),
        CounterPoint(60, 30),
    ]
    # All of it: 50 + 30 (reset: the new value) + 30 = 110 over 30 s.
    assert window_rate(points, end=30, seconds=60) == pytest.approx(110 / 30)
    # The last 20 s: points at 10, 20, 30: 30 + 30 over 20 s.
    assert window_rate(points, end=30, seconds=20) == pytest.approx(3.0)
    # Evaluated earlier, the later points are outside.
    assert window_rate(points, end=10, seconds=10) == pytest.approx(5.0)
    assert window_rate(points, end=30, seconds=5) is None  # one point
    assert window_rate([CounterPoint(1, 5), CounterPoint(2, 5)], end=5, seconds=10) is None


def test_counter_total_takes_resets_out() -> None:
    total = CounterTotal()
    assert [total.update(v) for v in (100, 150, 30, 60, 60)] == [0, 50, 80, 110, 110]
    assert total.total == 110


def test_window_rate_and_mean_by_hand() -> None:
    window = Window(10)
    assert window.rate() is None
    assert window.mean() is None
    for t, v in ((0, 0.0), (5, 10.0), (10, 30.0)):
        window.add(t, v)
    assert window.rate() == pytest.approx(3.0)
    assert window.mean() == pytest.approx(40 / 3)
    window.add(12, 40.0)  # t=0 leaves: points 5, 10, 12
    assert len(window) == 3
    assert window.span() == 7
    assert window.rate() == pytest.approx(30 / 7)
    assert window.mean() == pytest.approx(80 / 3)
    window.add(11, 1e9)  # older than the newest: ignored
    assert len(window) == 3
    window.add(40, 50.0)  # everything else is older than 30: alone
    assert window.rate() is None
    assert window.mean() == 50.0
    with pytest.raises(ValueError, match="> 0"):
        Window(0)


def test_incremental_window_matches_the_direct_sum() -> None:
    """CounterTotal + Window (O(1) a point) against window_rate over the raw points (O(n)),
    on counters with resets, irregular sampling and a window that slides."""
    rng = random.Random(7)
    for _ in range(20):
        seconds = rng.choice([5.0, 17.0, 60.0])
        total, window = CounterTotal(), Window(seconds)
        points: list[CounterPoint] = []
        t, raw = 0.0, 0.0
        for _ in range(200):
            t += rng.uniform(0.1, 3.0)
            raw = rng.uniform(0, 50) if rng.random() < 0.05 else raw + rng.uniform(0, 1e6)
            points.append(CounterPoint(raw, t))
            window.add(t, total.update(raw))
            expected = window_rate(points, end=t, seconds=seconds)
            if expected is None:
                assert window.rate() is None
            else:
                assert window.rate() == pytest.approx(expected, rel=1e-9)


def _promql_rate(points: list[CounterPoint], end: float, seconds: float) -> float | None:
    """Prometheus 2.x `extrapolatedRate` (promql/functions.go) for rate(), as the oracle of
    what a recording rule computes from the same samples."""
    start = end - seconds
    inside = [p for p in points if start <= p.timestamp <= end]
    if len(inside) < 2:
        return None
    increase = reset_adjusted_increase(p.value for p in inside)
    first, last = inside[0], inside[-1]
    sampled = last.timestamp - first.timestamp
    to_start, to_end = first.timestamp - start, end - last.timestamp
    average = sampled / (len(inside) - 1)
    if increase > 0 and first.value >= 0:
        to_start = min(to_start, sampled * (first.value / increase))
    threshold = average * 1.1
    extrapolate = sampled
    extrapolate += to_start if to_start < threshold else average / 2
    extrapolate += to_end if to_end < threshold else average / 2
    return increase * (extrapolate / sampled) / seconds


def test_equal_to_promql_rate_once_samples_reach_both_edges() -> None:
    """Samples every 1 s over a 30 s window: PromQL extrapolates to both edges, w / span,
    then divides by w; dividing by the span gives the same number."""
    points = [CounterPoint(1e6 + 40.0 * t + (t % 3), float(t) + 0.4) for t in range(100)]
    for end in (60.0, 75.5, 99.4):
        ours = window_rate(points, end=end, seconds=30)
        assert ours == pytest.approx(_promql_rate(points, end, 30), rel=1e-12)


def test_differs_from_promql_rate_where_it_extrapolates_half_a_step() -> None:
    """A counter that started inside the window: PromQL stops its extrapolation at the zero
    crossing and a gap larger than 1.1 sampling intervals only gets half an interval; the
    span-based rate is the increase over the time the samples really cover."""
    points = [CounterPoint(10.0 * i, 20.0 + 2.0 * i) for i in range(6)]  # 20..30 s, 5/s
    ours = window_rate(points, end=30, seconds=30)
    assert ours == pytest.approx(5.0)
    promql = _promql_rate(points, 30, 30)
    assert promql is not None
    # Extrapolated: 10 s sampled + 0 to the zero crossing + 0 to the end = 10 s -> 50 / 30.
    assert promql == pytest.approx(50 / 30)


def test_a_ratio_is_the_same_either_way() -> None:
    """Two counters sampled together get the same extrapolation factor: their ratio (a hit
    ratio, an intensity) is the same from PromQL and from the span-based rate."""
    hits = [CounterPoint(5e5 + 3.0 * t, t + 0.25) for t in range(0, 40, 2)]
    queried = [CounterPoint(2e6 + 12.0 * t, t + 0.25) for t in range(0, 40, 2)]
    for end in (25.0, 38.9):
        ours = window_rate(hits, end, 12) / window_rate(queried, end, 12)  # type: ignore[operator]
        theirs = _promql_rate(hits, end, 12) / _promql_rate(queried, end, 12)  # type: ignore[operator]
        assert ours == pytest.approx(0.25, rel=1e-12)
        assert theirs == pytest.approx(0.25, rel=1e-12)
