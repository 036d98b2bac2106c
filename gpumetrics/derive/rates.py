"""Counter deltas and rates with reset and wraparound handling. Pure: timestamps are passed in."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CounterPoint", "counter_delta", "counter_rate", "is_saturated"]


@dataclass(frozen=True, slots=True)
class CounterPoint:
    """A raw cumulative counter value read at `timestamp` (seconds, any epoch)."""

    value: float
    timestamp: float


def counter_delta(previous: float, current: float, *, bits: int | None = None) -> float:
    """Increase from `previous` to `current`.

    A decrease means the counter restarted or wrapped. With `bits` (a fixed-width hardware
    counter, e.g. 32 for IB `port_xmit_data` without extended counters), a decrease from the
    upper half of the range is taken as one wrap: current + 2^bits − previous. Otherwise a
    decrease is a reset (process or driver restart) and, as Prometheus' rate() does, the
    increase is `current` counted from zero.
    """
    if current >= previous:
        return current - previous
    if bits is not None and previous >= 1 << (bits - 1):
        return current + (1 << bits) - previous  # exact for int inputs, even at 64 bits
    return current


def counter_rate(
    previous: CounterPoint, current: CounterPoint, *, bits: int | None = None
) -> float | None:
    """Per-second increase between two points, or None if time did not move forward."""
    elapsed = current.timestamp - previous.timestamp
    if elapsed <= 0:
        return None
    return counter_delta(previous.value, current.value, bits=bits) / elapsed


def is_saturated(value: float, bits: int) -> bool:
    """True when a fixed-width counter sits at its maximum (IB PMA counters stop there)."""
    return value >= (1 << bits) - 1
