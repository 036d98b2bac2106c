"""record_prefix_lookup's block_hashes: the trace line it writes, the ghost cache it feeds,
and bad hashes dropped (counted, never raised)."""

from __future__ import annotations

import io
import json

import pytest

from gpumetrics.catalog import engine as cat
from gpumetrics.errors import ConfigError
from gpumetrics.hooks import EngineMetrics
from gpumetrics.kvsize import PrefixLru
from gpumetrics.testing.sample_values import metric_values


def test_a_lookup_with_hashes_writes_one_gpumetrics_trace_line() -> None:
    ticks = iter([1.5, 2.0])
    sink = io.StringIO()
    m = EngineMetrics("e", "m", kv_block_size=4, clock=lambda: next(ticks), trace=sink)
    m.record_prefix_lookup(
        queried_tokens=9, hit_tokens=4, block_hashes=[-3, 7], output_tokens=5, conversation="c"
    )
    m.record_prefix_lookup(queried_tokens=9, hit_tokens=0)  # no hashes: no line
    m.record_prefix_lookup(queried_tokens=4, hit_tokens=0, block_hashes=[8])
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert lines == [
        {"timestamp": 1500.0, "input_length": 9, "output_length": 5, "hash_ids": [-3, 7],
         "block_size": 4, "conversation": "c"},
        {"timestamp": 2000.0, "input_length": 4, "output_length": 0, "hash_ids": [8],
         "block_size": 4},
    ]  # fmt: skip
    assert m.hook_errors == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"block_hashes": [1, 2, 3]},  # 3 full blocks of 4 tokens > 9 tokens
        {"block_hashes": [1.0]},
        {"block_hashes": [True]},
        {"block_hashes": [1], "output_tokens": -1},
        {"block_hashes": [1], "conversation": 1.5},
    ],
)
def test_bad_hashes_are_dropped_and_counted(bad: dict[str, object]) -> None:
    sink = io.StringIO()
    m = EngineMetrics("e", "m", kv_block_size=4, kv_capacity_blocks=2, trace=sink)
    m.record_prefix_lookup(queried_tokens=9, hit_tokens=0, **bad)  # type: ignore[arg-type]
    assert m.hook_errors == 1
    assert sink.getvalue() == ""
    got = metric_values(m.snapshot(), cat.PREFIX_QUERIED.name)
    assert got == {("e", "m"): 0}  # all or nothing


def test_the_prediction_equals_direct_lru_replays_at_the_factors() -> None:
    """Sample rate 1: each factor's prediction is a plain PrefixLru replay at that size."""
    requests = [[1, 2, 3], [1, 2, 4], [5, 6], [1, 2, 3], [5, 6, 7], [1, 9]]
    m = EngineMetrics("e", "m", kv_block_size=1, kv_capacity_blocks=2, kv_predict_sample_rate=1)
    for ids in requests:
        m.record_prefix_lookup(queried_tokens=len(ids), hit_tokens=0, block_hashes=ids)
    got = metric_values(m.snapshot(), cat.KV_PREDICTED_HIT_RATIO.name)
    total = sum(map(len, requests))
    for factor, size in (("0.5", 1), ("2", 4), ("4", 8)):
        lru = PrefixLru(size)
        assert got["e", "m", factor] == pytest.approx(
            sum(lru.access(ids) for ids in requests) / total
        )


def test_no_pool_size_no_prediction_and_off_means_off() -> None:
    m = EngineMetrics("e", "m")
    m.record_prefix_lookup(queried_tokens=2, hit_tokens=0, block_hashes=[1])
    assert m.ghost is None
    m.record_kv(used_blocks=0, total_blocks=16)
    m.record_prefix_lookup(queried_tokens=2, hit_tokens=0, block_hashes=[1])
    assert m.ghost is not None
    assert m.ghost.capacities == (8.0, 32.0, 64.0)
    off = EngineMetrics("e", "m", kv_capacity_blocks=16, kv_predict_sample_rate=None)
    off.record_prefix_lookup(queried_tokens=2, hit_tokens=0, block_hashes=[1])
    assert off.ghost is None
    assert not metric_values(off.snapshot(), cat.KV_PREDICTED_HIT_RATIO.name)


def test_the_default_rate_is_001_and_a_big_pool_lowers_it_to_fit_the_memory_bound() -> None:
    m = EngineMetrics("e", "m", kv_capacity_blocks=16)
    m.record_prefix_lookup(queried_tokens=2, hit_tokens=0, block_hashes=[1])
    assert m.ghost is not None
    assert m.ghost.rate == pytest.approx(0.01, rel=1e-4)
    m = EngineMetrics(
        "e",
        "m",
        kv_capacity_blocks=1_000_000,
        kv_predict_max_bytes=1 << 20,
        kv_predict_sample_rate=1.0,
    )
    m.record_prefix_lookup(queried_tokens=2, hit_tokens=0, block_hashes=[1])
    assert m.ghost is not None
    assert m.ghost.rate < 1.0
    assert m.ghost.max_entries * 160 <= 1 << 20


@pytest.mark.parametrize("kwargs", [{"kv_predict_sample_rate": 0.0}, {"kv_predict_max_bytes": 0}])
def test_bad_prediction_settings_fail_at_construction(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        EngineMetrics("e", "m", **kwargs)  # type: ignore[arg-type]


class _Broken:
    def write(self, line: str, /) -> object:
        raise OSError("disk full")


def test_a_failing_trace_sink_drops_the_whole_call() -> None:
    m = EngineMetrics("e", "m", kv_block_size=1, kv_capacity_blocks=2, trace=_Broken())
    m.record_prefix_lookup(queried_tokens=2, hit_tokens=1, block_hashes=[1, 2])
    assert m.hook_errors == 1
    assert metric_values(m.snapshot(), cat.PREFIX_HIT.name) == {("e", "m"): 0}
