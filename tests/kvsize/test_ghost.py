"""The live ghost cache against the offline curves: exact at rate 1, equal to the offline
SHARDS curve at the same rate and seed, bounded memory, standard library only."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import pytest

from gpumetrics.errors import ConfigError
from gpumetrics.kvsize import (
    GhostCache,
    SampledCurve,
    SyntheticChat,
    Trace,
    concat,
    exact_curve,
    synthetic_chunks,
)
from gpumetrics.kvsize.ghost import ENTRY_BYTES


def _trace(references: int, seed: int = 0) -> Trace:
    load = SyntheticChat(conversations=3000, seed=seed)
    return concat(synthetic_chunks(load, references=references, chunk_requests=2000))


def _feed(ghost: GhostCache, trace: Trace) -> None:
    for request in trace.to_requests():
        ghost.access(request.block_ids)


def test_rate_one_predicts_the_exact_curve() -> None:
    trace = _trace(30_000)
    curve = exact_curve(trace)
    capacities = [1, 7, 50, 300, 2000, 10_000]
    ghost = GhostCache(capacities, rate=1.0, max_bytes=1 << 30)
    _feed(ghost, trace)
    assert ghost.lookups == ghost.sampled == trace.references
    for capacity, predicted in ghost.predictions():
        assert predicted == pytest.approx(float(curve.hit_ratio(capacity)), abs=1e-12)


@pytest.mark.parametrize(("rate", "seed"), [(0.05, 0), (0.02, 5)])
def test_equals_the_offline_sampled_curve(rate: float, seed: int) -> None:
    """Same rate and seed: the same blocks are sampled and the same estimate comes out, at
    capacities (k + 1/2)/R, i.e. ghosts of k sampled blocks."""
    trace = _trace(60_000, seed=1)
    builder = SampledCurve(rate, seed)
    builder.add(trace)
    offline = builder.curve()
    r = builder.rate
    capacities = [(k + 0.5) / r for k in (1, 2, 5, 20, 100, 400)]
    ghost = GhostCache(capacities, rate=rate, seed=seed, max_bytes=1 << 30)
    _feed(ghost, trace)
    assert ghost.rate == r
    assert ghost.sampled == offline.sampled_references
    for capacity, predicted in ghost.predictions():
        assert predicted == pytest.approx(float(offline.hit_ratio(capacity)), rel=1e-9)


def test_below_resolution_or_before_traffic_is_unknown() -> None:
    ghost = GhostCache([10, 1000], rate=0.01)
    assert ghost.predictions() == [(10.0, None), (1000.0, None)]
    ghost.access([1, 2, 3])
    assert ghost.predicted_hit_ratio(0) is None  # 10 blocks x 0.01 < one sampled block
    assert ghost.predicted_hit_ratio(1) is not None


def test_memory_stays_under_the_bound() -> None:
    """Capacities far beyond the budget lower the rate; filled ghosts stay under max_bytes."""
    load = SyntheticChat(conversations=100_000)
    trace = concat(synthetic_chunks(load, references=200_000, chunk_requests=4000))
    requests = [r.block_ids for r in trace.to_requests()]
    budget = 256 * 1024
    tracemalloc.start()
    try:
        ghost = GhostCache([5_000, 10_000, 20_000, 40_000], rate=0.5, max_bytes=budget)
        for blocks in requests:
            ghost.access(blocks)
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert ghost.rate < 0.5
    assert ghost.max_entries * ENTRY_BYTES <= budget
    assert ghost.entries > 0.9 * ghost.max_entries  # filled
    assert used <= budget


def test_standard_library_only() -> None:
    code = (
        "import sys\n"
        "from gpumetrics.kvsize import GhostCache, PrefixLru\n"
        "GhostCache([100], rate=0.5).access([1, 2, 3])\n"
        "print('numpy' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("capacities", "kwargs", "match"),
    [
        ([], {}, "capacities > 0"),
        ([0], {}, "capacities > 0"),
        ([10], {"rate": 0.0}, "sample-rate"),
        ([10], {"rate": 2.0}, "sample-rate"),
        ([10], {"max_bytes": 0}, "max_bytes"),
    ],
)
def test_bad_arguments(capacities: list[float], kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        GhostCache(capacities, **kwargs)  # type: ignore[arg-type]
