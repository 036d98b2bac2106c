"""Measured data, separate from how it is emitted: samples, source status, snapshots.

Everything is in base units (bytes, seconds, joules, watts, FLOPs, ratios 0..1); counters are
raw cumulative values; an unsupported value is simply absent (no sample), never a sentinel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "Check",
    "Collection",
    "HistogramValue",
    "Labels",
    "Sample",
    "Snapshot",
    "SourceStatus",
]

#: Label values in the order of the catalog entry's `labels`.
Labels = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HistogramValue:
    """A cumulative histogram: `counts[i]` observations <= `bounds[i]`; +Inf is `count`."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    sum: float
    count: float

    def __post_init__(self) -> None:
        if len(self.bounds) != len(self.counts):
            raise ValueError("histogram bounds and counts differ in length")
        if any(b < a for a, b in zip(self.counts, self.counts[1:], strict=False)):
            raise ValueError("histogram counts must be cumulative (non-decreasing)")


@dataclass(frozen=True, slots=True)
class Sample:
    """One series value for a catalog metric, named by its full exposition name."""

    metric: str
    labels: Labels
    value: float | HistogramValue


@dataclass(frozen=True, slots=True)
class Collection:
    """What one sampling cycle of one source produced.

    `errors` lists the codes of partial failures in this cycle (one GPU lost, one file
    unreadable: "NVML_ERROR_GPU_IS_LOST", "parse", ...): the source is still up and its other
    samples flow. A source that cannot sample at all raises instead.
    """

    samples: tuple[Sample, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """How a source's last sampling cycle went."""

    source: str
    up: bool
    duration_seconds: float
    last_success: float | None = None
    error: str | None = None
    #: Cumulative error counts by code (an NVML return-code name, "timeout", "parse", ...).
    errors_total: Mapping[str, int] = field(default_factory=dict)
    #: The samples served are an earlier cycle's, kept because the last cycle was rejected
    #: (an engine page over a limit); `up` is False meanwhile.
    stale: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one scrape needs, taken at `taken_at` (Unix seconds)."""

    taken_at: float
    samples: tuple[Sample, ...] = ()
    statuses: tuple[SourceStatus, ...] = ()

    def by_metric(self) -> dict[str, list[Sample]]:
        """Samples grouped by metric name, in arrival order."""
        grouped: dict[str, list[Sample]] = {}
        for sample in self.samples:
            grouped.setdefault(sample.metric, []).append(sample)
        return grouped


@dataclass(frozen=True, slots=True)
class Check:
    """One finding of `gpumetrics doctor`: `status` is ok, warn (works, degraded), fail (does
    not work) or skip (not present here); `hint` says what to do about it."""

    area: str
    name: str
    status: str
    detail: str
    hint: str = ""
