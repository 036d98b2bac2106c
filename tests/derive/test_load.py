"""Cache ratios, batch size and occupancy, load score."""

from __future__ import annotations

import pytest

from gpumetrics.derive import batch_occupancy, hit_ratio, load_score, mean_batch_size, miss_ratio


def test_hit_and_miss_ratio() -> None:
    assert hit_ratio(30, 120) == pytest.approx(0.25)
    assert miss_ratio(30, 120) == pytest.approx(0.75)
    assert hit_ratio(0, 50) == 0.0
    assert miss_ratio(0, 50) == 1.0
    assert hit_ratio(50, 50) == 1.0
    assert miss_ratio(50, 50) == 0.0


def test_ratios_none_without_traffic() -> None:
    assert hit_ratio(0, 0) is None
    assert miss_ratio(0, 0) is None


def test_hit_ratio_weighs_every_token_once() -> None:
    """Two windows of unequal traffic: the ratio of sums, not the mean of ratios."""
    # window 1: 90 of 100 hit; window 2: 0 of 900 hit
    assert hit_ratio(90 + 0, 100 + 900) == pytest.approx(0.09)
    assert hit_ratio(90 + 0, 100 + 900) != pytest.approx((0.9 + 0.0) / 2)


def test_mean_batch_size() -> None:
    assert mean_batch_size(600, 100) == pytest.approx(6.0)
    assert mean_batch_size(0, 100) == 0.0
    assert mean_batch_size(0, 0) is None


def test_batch_occupancy() -> None:
    assert batch_occupancy(64, 256) == pytest.approx(0.25)
    assert batch_occupancy(256, 256) == 1.0
    assert batch_occupancy(300, 256) == 1.0  # clipped
    assert batch_occupancy(0, 256) == 0.0


def test_load_score_is_the_binding_constraint() -> None:
    assert load_score(0.3, 0.8) == pytest.approx(0.8)  # KV-bound
    assert load_score(0.9, 0.2) == pytest.approx(0.9)  # batch-bound
    assert load_score(0.0, 0.0) == 0.0
    assert load_score(1.0, 0.5) == 1.0


def test_load_score_in_unit_interval() -> None:
    assert load_score(0.5, 1.3) == 1.0
    assert 0.0 <= load_score(0.2, 0.4) <= 1.0
