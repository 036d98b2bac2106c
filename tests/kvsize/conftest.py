"""Shared trace fixtures: the vendored Mooncake conversation trace (tests/data/mooncake)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumetrics.kvsize import ReadReport, Trace, concat, read_trace

MOONCAKE = (
    Path(__file__).resolve().parent.parent / "data" / "mooncake" / "conversation_trace.jsonl.gz"
)


@pytest.fixture(scope="session")
def mooncake() -> Trace:
    """The whole vendored trace: 12,031 requests, 288,500 block lookups."""
    return concat(read_trace(MOONCAKE, ReadReport(str(MOONCAKE)), fmt="mooncake"))
