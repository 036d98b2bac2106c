"""Token, block, sequence and request counts must be whole numbers: `1.5`, `True`, `False`,
`nan` and `2.0` are dropped whole and counted in `hook_errors` (never raised); ints and
int-likes (numpy integers, int subclasses) are counted."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from gpumetrics.catalog import engine as cat
from gpumetrics.hooks import EngineMetrics
from gpumetrics.testing.sample_values import sample_values

from .helpers import counters

STEP: dict[str, Any] = dict(
    phase="decode",
    sequences=1,
    prefill_tokens=0,
    decode_tokens=1,
    duration_s=0.5,  # a float where a float belongs
    flops=1.0,
    read_bytes=1.0,
    write_bytes=1.0,
)
REQUEST: dict[str, Any] = dict(
    ttft_s=0.1, inter_token_s=[0.01], e2e_s=0.2, prompt_tokens=5, cached_tokens=1, output_tokens=2
)
NOT_WHOLE: list[Any] = [1.5, True, False, math.nan, 2.0]


def _calls(bad: Any) -> list[Callable[[EngineMetrics], None]]:
    """One call per count argument of every hook, with `bad` in it."""
    calls: list[Callable[[EngineMetrics], None]] = [
        lambda m: m.record_eviction(bad),
        lambda m: m.record_preemption(bad),
        lambda m: m.record_recompute(bad, flops=1.0),
        lambda m: m.set_queue(bad, 1),
        lambda m: m.set_queue(1, bad),
        lambda m: m.record_prefix_lookup(queried_tokens=bad, hit_tokens=0),
        lambda m: m.record_prefix_lookup(queried_tokens=5, hit_tokens=bad),
        lambda m: m.record_prefix_lookup(queried_tokens=5, hit_tokens=1, output_tokens=bad),
        lambda m: m.record_kv(used_blocks=bad, total_blocks=10),
        lambda m: m.record_kv(used_blocks=1, total_blocks=bad),
        lambda m: m.record_kv(used_blocks=1, total_blocks=10, evictable_blocks=bad),
    ]
    for key in ("sequences", "prefill_tokens", "decode_tokens"):
        calls.append(lambda m, key=key: m.record_step(**{**STEP, key: bad}))
    for key in ("prompt_tokens", "cached_tokens", "output_tokens"):
        calls.append(lambda m, key=key: m.record_request_finished(**{**REQUEST, key: bad}))
    return calls


@pytest.mark.parametrize("bad", NOT_WHOLE, ids=repr)
def test_counts_that_are_not_whole_numbers_are_dropped_and_counted(bad: Any) -> None:
    for call in _calls(bad):
        m = EngineMetrics("e0", "m0")
        before = counters(m)
        call(m)  # must not raise
        assert m.hook_errors == 1
        assert counters(m) == before  # nothing half-applied


class _SubInt(int):
    pass


@pytest.mark.parametrize("count", [3, _SubInt(3)], ids=["int", "int subclass"])
def test_whole_counts_are_counted(count: int) -> None:
    m = EngineMetrics("e0", "m0")
    m.record_preemption(count)
    m.record_eviction(count)
    assert m.hook_errors == 0
    values = sample_values(m.snapshot())
    assert values[(cat.PREEMPTIONS.name, ("e0", "m0"))] == 3.0
    assert values[(cat.KV_EVICTED_BLOCKS.name, ("e0", "m0"))] == 3.0


def test_a_numpy_integer_is_accepted() -> None:
    np = pytest.importorskip("numpy")
    m = EngineMetrics("e0", "m0")
    m.set_queue(np.int64(4), np.int32(2))
    assert m.hook_errors == 0
    values = sample_values(m.snapshot())
    assert values[(cat.WAITING_REQUESTS.name, ("e0", "m0"))] == 4.0
