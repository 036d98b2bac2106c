"""Counter deltas and rates: resets, fixed-width wraparound, saturation, non-advancing time."""

from __future__ import annotations

import pytest

from gpumetrics.derive import CounterPoint, counter_delta, counter_rate, is_saturated

U32 = 2**32
U64 = 2**64


def test_plain_increase() -> None:
    assert counter_delta(10, 25) == 15
    assert counter_delta(0, 0) == 0
    assert counter_delta(7, 7) == 0
    assert counter_delta(1.5, 4.0) == 2.5


def test_reset_counts_from_zero() -> None:
    """A process restart: the new value is all increase since the restart (Prometheus rate)."""
    assert counter_delta(1000, 5) == 5
    assert counter_delta(1000, 0) == 0
    assert counter_delta(U32 - 10, 5) == 5  # without `bits` a decrease is never a wrap


def test_32_bit_wraparound() -> None:
    assert counter_delta(U32 - 10, 5, bits=32) == 15
    assert counter_delta(U32 - 1, 0, bits=32) == 1
    assert counter_delta(U32 - 1, U32 // 2 - 1, bits=32) == U32 // 2


def test_decrease_from_upper_half_is_one_wrap() -> None:
    """The docstring's rule: "a decrease from the upper half of the range is taken as one wrap:
    current + 2^bits − previous" — whatever half `current` lands in."""
    assert counter_delta(3 * U32 // 4, U32 // 2, bits=32) == U32 // 2 + U32 - 3 * U32 // 4
    assert counter_delta(U32 - 1, U32 - 2, bits=32) == U32 - 1  # a near-full lap


def test_64_bit_wraparound() -> None:
    # Deltas at 2^64 are only as exact as a float there (53-bit mantissa): use one it holds.
    assert counter_delta(U64 - 2**20, 2**20, bits=64) == 2**21


def test_decrease_from_lower_half_is_a_reset_even_with_bits() -> None:
    """A 32-bit counter at 1000 cannot wrap to 5 in one step; that is a restart."""
    assert counter_delta(1000, 5, bits=32) == 5
    assert counter_delta(U32 // 2 - 1, 3, bits=32) == 3


def test_increase_with_bits_is_plain() -> None:
    assert counter_delta(5, U32 - 10, bits=32) == U32 - 15


def test_rate() -> None:
    a = CounterPoint(value=100, timestamp=10.0)
    b = CounterPoint(value=160, timestamp=13.0)
    assert counter_rate(a, b) == pytest.approx(20.0)


def test_rate_over_wrap() -> None:
    a = CounterPoint(value=U32 - 10, timestamp=100.0)
    b = CounterPoint(value=5, timestamp=100.5)
    assert counter_rate(a, b, bits=32) == pytest.approx(30.0)  # 15 / 0.5 s


def test_rate_over_reset() -> None:
    a = CounterPoint(value=5000, timestamp=0.0)
    b = CounterPoint(value=40, timestamp=4.0)
    assert counter_rate(a, b) == pytest.approx(10.0)


def test_rate_none_when_time_does_not_advance() -> None:
    a = CounterPoint(value=100, timestamp=10.0)
    assert counter_rate(a, CounterPoint(value=200, timestamp=10.0)) is None
    assert counter_rate(a, CounterPoint(value=200, timestamp=9.0)) is None


def test_saturation() -> None:
    assert is_saturated(U32 - 1, 32)
    assert not is_saturated(U32 - 2, 32)
    assert not is_saturated(0, 32)
    assert not is_saturated(U32 - 1, 64)
    assert is_saturated(float(U64 - 1), 64)


def test_saturation_64_bit_integer_reading() -> None:
    """sysfs gives integers: a 64-bit counter stuck at its maximum reads 2^64 − 1 exactly."""
    assert is_saturated(U64 - 1, 64)
