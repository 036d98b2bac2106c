"""Sample values for tests, by metric name and labels, as prometheus_client's
`REGISTRY.get_sample_value(name, labels)` gives them for its registry.

Each function takes anything that holds samples: a source's `Collection`, the Sampler's
`Snapshot`, or the samples themselves (`EngineMetrics.snapshot()`, a tuple). Labels are the
label values in the catalog entry's order (a `Sample`'s own form). A series that appears twice
is an error (ValueError): an exporter must never emit one.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..samples import Collection, HistogramValue, Labels, Sample, Snapshot

__all__ = [
    "SampleValue",
    "Samples",
    "get_sample_value",
    "metric_totals",
    "metric_values",
    "sample_values",
    "scalar_values",
]

#: A sample's value: a float for counters and gauges, a HistogramValue for histograms.
SampleValue = float | HistogramValue
#: What the functions here read samples from.
Samples = Collection | Snapshot | Iterable[Sample]


def _samples(samples: Samples) -> Iterable[Sample]:
    return samples.samples if isinstance(samples, Collection | Snapshot) else samples


def sample_values(samples: Samples) -> dict[tuple[str, Labels], SampleValue]:
    """Every series as {(metric name, label values): value}; ValueError on a duplicate."""
    out: dict[tuple[str, Labels], SampleValue] = {}
    for sample in _samples(samples):
        key = (sample.metric, sample.labels)
        if key in out:
            raise ValueError(f"duplicate series {key}")
        out[key] = sample.value
    return out


def scalar_values(samples: Samples) -> dict[tuple[str, Labels], float]:
    """As `sample_values`, for sources that export no histograms: TypeError on a histogram."""
    out: dict[tuple[str, Labels], float] = {}
    for key, value in sample_values(samples).items():
        if not isinstance(value, float):
            raise TypeError(f"{key} is a {type(value).__name__}, not a float")
        out[key] = value
    return out


def get_sample_value(samples: Samples, metric: str, labels: Labels = ()) -> SampleValue | None:
    """The value of one series, or None when there is no such series."""
    return sample_values(samples).get((metric, tuple(labels)))


def metric_values(samples: Samples, metric: str) -> dict[Labels, SampleValue]:
    """One metric's series as {label values: value}."""
    return {
        labels: value for (name, labels), value in sample_values(samples).items() if name == metric
    }


def metric_totals(samples: Samples) -> dict[str, float]:
    """Each metric's values summed over its series (a histogram counts its observations)."""
    totals: dict[str, float] = {}
    for (name, _), value in sample_values(samples).items():
        amount = value.count if isinstance(value, HistogramValue) else value
        totals[name] = totals.get(name, 0.0) + amount
    return totals
