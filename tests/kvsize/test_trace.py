"""The in-memory trace: validation, token weights, round trips."""

from __future__ import annotations

import numpy as np
import pytest

from gpumetrics.errors import ConfigError
from gpumetrics.kvsize import Request, Trace, concat


def test_round_trip_and_token_weights() -> None:
    requests = [Request((1, 2, 3), 40, 7, 5.0), Request((), 3, 1, 9.0), Request((-1,), 16)]
    trace = Trace.from_requests(requests, block_size=16)
    assert trace.block_ids.tolist() == [1, 2, 3, 2**64 - 1]
    assert trace.to_requests()[:2] == requests[:2]
    refs = trace.refs()
    assert refs.tokens.tolist() == [16, 16, 8, 16]
    assert refs.context.tolist() == [40, 40, 40, 16]
    assert (trace.requests, trace.references, trace.queried_tokens) == (3, 4, 59)
    assert trace.duration_s() == 0.009


def test_select_keeps_request_grouping() -> None:
    trace = Trace.from_requests([Request((1, 2), 32), Request((3,), 16)], block_size=16)
    kept = trace.refs().select(np.array([False, True, False]))
    assert kept.ids.tolist() == [2]
    assert kept.lengths.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("requests", "block_size", "match"),
    [
        ([Request((1, 2, 3), 32)], 16, "more blocks than its prompt"),
        ([Request((1,), 16)], 0, "block_size"),
    ],
)
def test_invalid_traces(requests: list[Request], block_size: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Trace.from_requests(requests, block_size)


def test_concat_needs_one_block_size() -> None:
    a = Trace.from_requests([Request((1,), 16)], 16)
    b = Trace.from_requests([Request((1,), 32)], 32)
    with pytest.raises(ConfigError, match="disagree"):
        concat([a, b])
    with pytest.raises(ConfigError, match="no chunks"):
        concat([])
    assert concat([a, a]).block_ids.tolist() == [1, 1]
