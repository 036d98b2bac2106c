"""Prometheus text (format 0.0.4) -> `Exposition`, with prometheus_client's parser.

This is the only module of the engine source that imports prometheus_client, and it uses only
its parser (the exposition side stays in `export/prometheus.py`). Anything the parser rejects,
text that is not UTF-8, and text that does not end in a newline (the format requires one; a
body cut short in mid-line usually lacks it) raise `EngineError` code "parse".

`parse_page` reads a page under an engine's `Limits` (limits.py): lines are split and counted
before the parser sees them, and each family is checked as soon as it is parsed.
"""

from __future__ import annotations

from prometheus_client.parser import text_fd_to_metric_families, text_string_to_metric_families

from .errors import PARSE, EngineError
from .limits import Limits, PageGuard
from .page import Exposition, RawSample

__all__ = ["decode", "parse_page", "parse_text"]


def decode(body: bytes) -> str:
    """The body as text (UTF-8, the format's encoding)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EngineError(PARSE, f"exposition is not UTF-8: {exc}") from None


def parse_text(text: str) -> Exposition:
    """Every sample of `text`, grouped by sample name."""
    if text and not text.endswith("\n"):
        raise EngineError(PARSE, "exposition does not end in a newline (truncated?)")
    samples: list[RawSample] = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.append(RawSample(sample.name, dict(sample.labels), float(sample.value)))
    except Exception as exc:  # the parser raises ValueError, IndexError, ... on bad input
        raise EngineError(PARSE, f"not Prometheus text: {type(exc).__name__}: {exc}") from None
    return Exposition.of(samples)


def parse_page(body: bytes, limits: Limits) -> tuple[Exposition, int]:
    """Every sample of the page `body` (UTF-8 bytes) within `limits`, and how many exact
    duplicate series were dropped; raises `LimitError` over a limit, `EngineError` "parse" on
    text that is not Prometheus text."""
    if body and not body.endswith(b"\n"):
        raise EngineError(PARSE, "exposition does not end in a newline (truncated?)")
    guard = PageGuard(limits)
    samples: list[RawSample] = []
    try:
        for family in text_fd_to_metric_families(guard.lines(body)):  # type: ignore[arg-type]
            parsed = family.samples
            for position in guard.family(family.name, ((s.name, s.labels) for s in parsed)):
                sample = parsed[position]
                samples.append(RawSample(sample.name, dict(sample.labels), float(sample.value)))
    except EngineError:
        raise
    except Exception as exc:  # the parser raises ValueError, IndexError, ... on bad input
        raise EngineError(PARSE, f"not Prometheus text: {type(exc).__name__}: {exc}") from None
    return Exposition.of(samples), guard.duplicates
