"""Limits on what one engine page may hold, checked while it is read (issue 13).

The byte cap (`max_bytes`) bounds the download, not what the bytes expand to: a 15.6 MB page
of 330 k short series once cost the exporter almost 1 GB. Each limit below is a key of the
engine's config (`[[engines]]` in the TOML file, or `--engine NAME=URL,max_series=...`) with the
default shown, and each has its error code, counted in
`gpumetrics_source_errors_total{source="engine:<name>",code=...}`:

| key                      | default | code                    | bounds                   |
|--------------------------|---------|-------------------------|--------------------------|
| `max_series`             | 10000   | `too_many_series`       | sample lines per page    |
| `max_label_value_length` | 1024    | `label_value_too_long`  | characters per value     |
| `max_labels`             | 128     | `too_many_labels`       | labels per series        |
| `max_label_values`       | 1000    | `too_many_label_values` | values per label, family |

Over any limit the whole cycle is rejected (`LimitError`): nothing of the page is applied, and
the Sampler keeps the engine's last good samples, marked stale
(`gpumetrics_source_up` 0, `gpumetrics_source_stale` 1, the code counted). Series are counted
while the page is split into lines, before the parser sees them, so a page far over
`max_series` costs the parse of `max_series` lines, not of the whole page; a line too long to
fit the label limits is refused before it is parsed. (Counting lines with `bytes.count` first
was tried and dropped: each scan of 16 MiB holds the GIL for tens of ms in one C call, while
splitting line by line lets the GPU sampler in between any two lines.)

Exact duplicate series (same name, same labels) are not summed: the first one is kept, the
others dropped and counted as the partial error `duplicate_series` (the cycle still applies),
as Prometheus keeps the first sample of a duplicated series and counts the rest.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from ...engine_config import (
    DEFAULT_MAX_LABEL_VALUE_LENGTH,
    DEFAULT_MAX_LABEL_VALUES,
    DEFAULT_MAX_LABELS,
    DEFAULT_MAX_SERIES,
    EngineConfig,
)
from .errors import PARSE, EngineError

__all__ = [
    "DEFAULT_MAX_LABELS",
    "DEFAULT_MAX_LABEL_VALUES",
    "DEFAULT_MAX_LABEL_VALUE_LENGTH",
    "DEFAULT_MAX_SERIES",
    "DUPLICATE_SERIES",
    "LABEL_VALUE_TOO_LONG",
    "TOO_MANY_LABELS",
    "TOO_MANY_LABEL_VALUES",
    "TOO_MANY_SERIES",
    "LimitError",
    "Limits",
    "PageGuard",
]

#: The page holds more than `max_series` sample lines.
TOO_MANY_SERIES: Final = "too_many_series"
#: A label value is longer than `max_label_value_length` characters.
LABEL_VALUE_TOO_LONG: Final = "label_value_too_long"
#: A series has more than `max_labels` labels.
TOO_MANY_LABELS: Final = "too_many_labels"
#: One label of one metric family takes more than `max_label_values` distinct values.
TOO_MANY_LABEL_VALUES: Final = "too_many_label_values"
#: Partial error (never raised): an exact duplicate series was dropped (the first is kept).
DUPLICATE_SERIES: Final = "duplicate_series"

#: Lines between two voluntary GIL hand-overs while a page is split and parsed.
_YIELD_EVERY: Final = 2048
#: Bytes a sample line may spend beyond its label values (name, label names, quotes, value).
_LINE_SLACK: Final = 4096


@dataclass(frozen=True, slots=True)
class Limits:
    """One engine's page limits (see the module's table); every field > 0."""

    max_series: int = DEFAULT_MAX_SERIES
    max_label_value_length: int = DEFAULT_MAX_LABEL_VALUE_LENGTH
    max_labels: int = DEFAULT_MAX_LABELS
    max_label_values: int = DEFAULT_MAX_LABEL_VALUES

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be an integer > 0, got {value!r}")

    @classmethod
    def of(cls, config: EngineConfig) -> Limits:
        """The limits `config` sets."""
        return cls(
            config.max_series,
            config.max_label_value_length,
            config.max_labels,
            config.max_label_values,
        )

    @property
    def max_line_bytes(self) -> int:
        """The longest sample line that can still fit the label limits (a value escaped in
        full doubles in length; names and syntax get `_LINE_SLACK` bytes per label)."""
        return _LINE_SLACK + self.max_labels * (2 * self.max_label_value_length + _LINE_SLACK)


class LimitError(EngineError):
    """A page over one of the limits; the Sampler keeps the source's last good samples."""

    #: Read by the Sampler (`pipeline`): keep the last good collection, marked stale.
    keep_last_good = True


class PageGuard:
    """Checks one page against `limits`: `lines()` splits the body and counts series,
    `family()` checks the parsed samples of one metric family. Use one guard per page."""

    __slots__ = ("_limits", "_seen", "duplicates", "series")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._seen: set[tuple[str, frozenset[tuple[str, str]]]] = set()
        self.series = 0
        """Sample lines seen so far."""
        self.duplicates = 0
        """Exact duplicate series dropped so far."""

    def lines(self, body: bytes) -> Iterator[str]:
        """The body's lines, decoded one at a time (a 16 MiB page is never copied whole);
        raises LimitError past `max_series` sample lines (a sample line: not empty and not
        starting with `#` once ASCII whitespace is stripped) or on a line too long to fit the
        label limits, EngineError "parse" on invalid UTF-8. Every `_YIELD_EVERY` lines the
        thread sleeps for 0 s, offering the GIL to the samplers."""
        limits = self._limits
        longest = limits.max_line_bytes
        start, end = 0, len(body)
        count = 0
        while start < end:
            stop = body.find(b"\n", start)
            stop = end if stop < 0 else stop + 1
            raw = body[start:stop]
            start = stop
            count += 1
            if count % _YIELD_EVERY == 0:
                time.sleep(0)
            stripped = raw.lstrip()
            if not stripped or stripped.startswith(b"#"):
                yield _decode(raw)
                continue
            self.series += 1
            if self.series > limits.max_series:
                raise LimitError(
                    TOO_MANY_SERIES,
                    f"page has more than max_series={limits.max_series} series",
                )
            if len(raw) > longest:
                raise LimitError(
                    LABEL_VALUE_TOO_LONG,
                    f"a {len(raw)}-byte sample line cannot fit max_labels={limits.max_labels} "
                    f"of max_label_value_length={limits.max_label_value_length}",
                )
            yield _decode(raw)

    def family(self, name: str, samples: Iterable[tuple[str, Mapping[str, str]]]) -> list[int]:
        """Check one family's samples (sample name, labels); the positions of the samples to
        keep (duplicates of an earlier series are left out and counted)."""
        limits = self._limits
        values: dict[str, set[str]] = {}
        keep: list[int] = []
        for position, (sample_name, labels) in enumerate(samples):
            if len(labels) > limits.max_labels:
                raise LimitError(
                    TOO_MANY_LABELS,
                    f"{sample_name} has {len(labels)} labels > max_labels={limits.max_labels}",
                )
            for label, value in labels.items():
                if len(value) > limits.max_label_value_length:
                    raise LimitError(
                        LABEL_VALUE_TOO_LONG,
                        f"{sample_name} label {label} is {len(value)} characters > "
                        f"max_label_value_length={limits.max_label_value_length}",
                    )
                seen = values.setdefault(label, set())
                seen.add(value)
                if len(seen) > limits.max_label_values:
                    raise LimitError(
                        TOO_MANY_LABEL_VALUES,
                        f"{name} label {label} has more than "
                        f"max_label_values={limits.max_label_values} distinct values",
                    )
            key = (sample_name, frozenset(labels.items()))
            if key in self._seen:
                self.duplicates += 1
                continue
            self._seen.add(key)
            keep.append(position)
        return keep


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EngineError(PARSE, f"exposition is not UTF-8: {exc}") from None
