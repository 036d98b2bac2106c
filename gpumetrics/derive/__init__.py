"""Derived metrics as pure functions: no clock, no I/O; timestamps and deltas are passed in."""

from .efficiency import (
    Bound,
    arithmetic_intensity,
    attainable_flops,
    bound,
    mbu,
    mfu,
    ridge_point,
    roofline_time,
)
from .gauges import DerivedGauges
from .load import batch_occupancy, hit_ratio, load_score, mean_batch_size, miss_ratio
from .rates import CounterPoint, counter_delta, counter_rate, is_saturated
from .window import (
    CounterTotal,
    Window,
    format_window,
    parse_window,
    reset_adjusted_increase,
    window_rate,
)

__all__ = [
    "Bound",
    "CounterPoint",
    "CounterTotal",
    "DerivedGauges",
    "Window",
    "arithmetic_intensity",
    "attainable_flops",
    "batch_occupancy",
    "bound",
    "counter_delta",
    "counter_rate",
    "format_window",
    "hit_ratio",
    "is_saturated",
    "load_score",
    "mbu",
    "mean_batch_size",
    "mfu",
    "miss_ratio",
    "parse_window",
    "reset_adjusted_increase",
    "ridge_point",
    "roofline_time",
    "window_rate",
]
