"""The shipped sample-value helpers, on hand-built samples."""

from __future__ import annotations

import pytest

from gpumetrics.samples import Collection, HistogramValue, Sample, Snapshot
from gpumetrics.testing.sample_values import (
    get_sample_value,
    metric_totals,
    metric_values,
    sample_values,
    scalar_values,
)

HIST = HistogramValue((0.1, 1.0), (2, 5), 3.5, 6)
SAMPLES = (
    Sample("power_watts", ("0",), 300.0),
    Sample("power_watts", ("1",), 200.0),
    Sample("step_seconds", ("e",), HIST),
)


@pytest.mark.parametrize(
    "holder", [SAMPLES, list(SAMPLES), Collection(SAMPLES), Snapshot(0.0, SAMPLES)]
)
def test_every_holder_of_samples_reads_the_same(holder: object) -> None:
    assert sample_values(holder) == {  # type: ignore[arg-type]
        ("power_watts", ("0",)): 300.0,
        ("power_watts", ("1",)): 200.0,
        ("step_seconds", ("e",)): HIST,
    }


def test_one_series_one_metric_and_totals() -> None:
    assert get_sample_value(SAMPLES, "power_watts", ("1",)) == 200.0
    assert get_sample_value(SAMPLES, "power_watts", ("2",)) is None
    assert get_sample_value(SAMPLES, "nothing") is None
    assert metric_values(SAMPLES, "power_watts") == {("0",): 300.0, ("1",): 200.0}
    assert metric_totals(SAMPLES) == {"power_watts": 500.0, "step_seconds": 6.0}


def test_a_duplicate_series_or_a_histogram_where_scalars_are_expected_is_refused() -> None:
    with pytest.raises(ValueError, match="duplicate series"):
        sample_values((*SAMPLES, Sample("power_watts", ("0",), 1.0)))
    assert scalar_values(SAMPLES[:2]) == {
        ("power_watts", ("0",)): 300.0,
        ("power_watts", ("1",)): 200.0,
    }
    with pytest.raises(TypeError, match="HistogramValue"):
        scalar_values(SAMPLES)
