"""A parsed exposition as flat samples by name, and the histogram and replica views of it.

Names are sample names as they appear on the wire (`vllm:prompt_tokens_total`,
`vllm:time_to_first_token_seconds_bucket`), whatever `# TYPE` lines said: engines' TYPE lines
are not needed to map them, and a wrong one must not hide a series.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import pairwise

from ...samples import HistogramValue

__all__ = ["Exposition", "RawSample", "label_number"]

#: A label set, hashable, for grouping.
_Key = frozenset[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class RawSample:
    """One line of the exposition: sample name, labels, value (may be NaN or +-Inf)."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class Exposition:
    """Samples grouped by sample name, in the order they came."""

    by_name: Mapping[str, tuple[RawSample, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, samples: list[RawSample]) -> Exposition:
        grouped: dict[str, list[RawSample]] = {}
        for sample in samples:
            grouped.setdefault(sample.name, []).append(sample)
        return cls({name: tuple(group) for name, group in grouped.items()})

    def get(self, name: str) -> tuple[RawSample, ...]:
        return self.by_name.get(name, ())

    def has_prefix(self, prefix: str) -> bool:
        return any(name.startswith(prefix) for name in self.by_name)

    def without_replicas(self, replica_labels: tuple[str, ...]) -> Exposition:
        """One series per label set that differs only in `replica_labels`: the one with the
        lowest replica ranks. SGLang's tensor/pipeline-parallel ranks (`tp_rank`, `pp_rank`)
        run replicas of the same scheduler state, so their series repeat one value."""
        if not replica_labels:
            return self
        kept: dict[str, tuple[RawSample, ...]] = {}
        for name, samples in self.by_name.items():
            best: dict[_Key, tuple[tuple[tuple[int, int, str], ...], RawSample]] = {}
            for sample in samples:
                rest = frozenset(
                    item for item in sample.labels.items() if item[0] not in replica_labels
                )
                rank = tuple(_rank(sample.labels.get(label, "")) for label in replica_labels)
                if rest not in best or rank < best[rest][0]:
                    best[rest] = (rank, sample)
            kept[name] = tuple(sample for _, sample in best.values())
        return Exposition(kept)

    def only_totals(self, total_labels: tuple[str, ...]) -> Exposition:
        """Without the series that break a total down by one of `total_labels`: SGLang writes
        a queue's total under `priority=""` and each priority again under `priority="<n>"`,
        so summing them all would count every request twice."""
        if not total_labels:
            return self
        return Exposition(
            {
                name: tuple(
                    s for s in samples if not any(s.labels.get(label) for label in total_labels)
                )
                for name, samples in self.by_name.items()
            }
        )

    def histograms(self, base: str) -> Iterator[tuple[Mapping[str, str], HistogramValue | None]]:
        """Each series of histogram `base` (labels without `le`) and its value, or None when
        the series is inconsistent (bad `le`, counts going down, no `_sum`, no count)."""
        buckets: dict[_Key, list[tuple[float, float]]] = {}
        sums: dict[_Key, float] = {}
        counts: dict[_Key, float] = {}
        labels: dict[_Key, Mapping[str, str]] = {}
        broken: set[_Key] = set()
        for sample in self.get(base + "_bucket"):
            rest = {k: v for k, v in sample.labels.items() if k != "le"}
            key = frozenset(rest.items())
            labels.setdefault(key, rest)
            bound = _bound(sample.labels.get("le"))
            if bound is None:
                broken.add(key)
            else:
                buckets.setdefault(key, []).append((bound, sample.value))
        for suffix, target in (("_sum", sums), ("_count", counts)):
            for sample in self.get(base + suffix):
                key = frozenset(sample.labels.items())
                labels.setdefault(key, dict(sample.labels))
                if key in target:
                    broken.add(key)
                target[key] = sample.value
        for key, series_labels in labels.items():
            if key in broken:
                yield series_labels, None
            else:
                yield (
                    series_labels,
                    _histogram(buckets.get(key, []), sums.get(key), counts.get(key)),
                )


def label_number(value: str | None) -> float | None:
    """A label's value as a finite number >= 0 (`block_size="16"`), else None ("None", "")."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _rank(value: str) -> tuple[int, int, str]:
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def _bound(le: str | None) -> float | None:
    if le is None:
        return None
    try:
        bound = float(le)
    except ValueError:
        return None
    return None if math.isnan(bound) or bound == -math.inf else bound


def _histogram(
    buckets: list[tuple[float, float]], total: float | None, count: float | None
) -> HistogramValue | None:
    buckets = sorted(buckets)
    bounds = [bound for bound, _ in buckets]
    values = [value for _, value in buckets]
    if len(set(bounds)) != len(bounds) or not all(math.isfinite(v) and v >= 0 for v in values):
        return None
    if bounds and math.isinf(bounds[-1]):
        bounds.pop()
        count = values.pop()
    if total is None or count is None or not (math.isfinite(total) and math.isfinite(count)):
        return None
    cumulative = [*values, count]
    if count < 0 or any(b < a for a, b in pairwise(cumulative)):
        return None
    return HistogramValue(tuple(bounds), tuple(values), total, count)
