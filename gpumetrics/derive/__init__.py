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
from .load import batch_occupancy, hit_ratio, load_score, mean_batch_size, miss_ratio
from .rates import CounterPoint, counter_delta, counter_rate, is_saturated

__all__ = [
    "Bound",
    "CounterPoint",
    "arithmetic_intensity",
    "attainable_flops",
    "batch_occupancy",
    "bound",
    "counter_delta",
    "counter_rate",
    "hit_ratio",
    "is_saturated",
    "load_score",
    "mbu",
    "mean_batch_size",
    "mfu",
    "miss_ratio",
    "ridge_point",
    "roofline_time",
]
