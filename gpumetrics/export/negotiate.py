"""Content negotiation for /metrics: which exposition format an Accept header prefers.

Two formats are offered: the classic text format (`text/plain; version=0.0.4`) and
OpenMetrics 1.0.0 (`application/openmetrics-text; version=1.0.0`). Each media range of the
header is read with its q-value (RFC 9110 12.5.1) and its `version` parameter; a range
with a version matches an offer only with that exact version (so OpenMetrics 0.0.1 or
text 1.0.0 are not taken to mean what is offered), a range without one matches any version;
`*/*` and `type/*` match every offer of that type. An offer's quality is that of the most
specific range matching it; the offer with the highest non-zero quality wins, a tie going to
the one whose range comes first in the header, then to the classic format. When nothing
matches (no header, `application/json`, ...) the classic format is served, as Prometheus
exporters do.

prometheus_client's `choose_encoder` (0.26) differs: it ignores q-values and takes the first
OpenMetrics range with a version >= 1.0.0 (or none), so
`text/plain;q=1,application/openmetrics-text;q=0.1` gets OpenMetrics there, the classic text
here; for Prometheus' own header (OpenMetrics first, at q=1) both pick OpenMetrics 1.0.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Format", "MediaRange", "choose_format", "parse_accept"]


class Format(Enum):
    """An exposition format this exporter renders: (media type, version)."""

    CLASSIC = ("text/plain", "0.0.4")
    OPENMETRICS = ("application/openmetrics-text", "1.0.0")

    @property
    def media_type(self) -> str:
        return self.value[0]

    @property
    def version(self) -> str:
        return self.value[1]


@dataclass(frozen=True, slots=True)
class MediaRange:
    """One comma-separated item of an Accept header (type and subtype lower-cased)."""

    type: str
    subtype: str
    version: str | None
    quality: float
    position: int

    def matches(self, offer: Format) -> int:
        """How specifically this range matches `offer`: 0 no match, 1 `*/*`, 2 `type/*`,
        3 the media type, 4 the media type and its version."""
        kind, _, sub = offer.media_type.partition("/")
        if self.type == "*" and self.subtype == "*":
            return 1
        if self.type != kind:
            return 0
        if self.subtype == "*":
            return 2
        if self.subtype != sub:
            return 0
        if self.version is None:
            return 3
        return 4 if self.version == offer.version else 0


def parse_accept(header: str) -> list[MediaRange]:
    """The media ranges of an Accept header; malformed items are skipped, a malformed or
    out-of-range q-value counts as 0 (not acceptable)."""
    ranges = []
    for position, item in enumerate(header.split(",")):
        media, *params = item.split(";")
        kind, slash, sub = media.strip().lower().partition("/")
        if not slash or not kind or not sub:
            continue
        quality, version = 1.0, None
        for param in params:
            key, _, value = param.strip().partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
                if not 0.0 <= quality <= 1.0:  # also NaN
                    quality = 0.0
            elif key == "version":
                version = value
        ranges.append(MediaRange(kind, sub, version, quality, position))
    return ranges


def choose_format(accept: str | None) -> Format:
    """The format to serve for a request's Accept header (the classic one when absent)."""
    ranges = parse_accept(accept or "")
    best: tuple[float, int, int] | None = None  # (quality, -position, -offer index)
    chosen = Format.CLASSIC
    for index, offer in enumerate((Format.CLASSIC, Format.OPENMETRICS)):
        matching = [(r.matches(offer), r) for r in ranges]
        specificity = max((s for s, _ in matching), default=0)
        if specificity == 0:
            continue
        # the most specific ranges decide; equally specific ones: the best of them
        deciding = max(
            (r for s, r in matching if s == specificity), key=lambda r: (r.quality, -r.position)
        )
        if deciding.quality <= 0.0:
            continue
        key = (deciding.quality, -deciding.position, -index)
        if best is None or key > best:
            best, chosen = key, offer
    return chosen
