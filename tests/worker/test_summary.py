"""The worker's own counters: WorkerStats counts step reports; the summary's ratios."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gpumetrics.costmodel import RequestWork
from gpumetrics.worker.block_manager import PrefixMatch
from gpumetrics.worker.observer import FinishedRequest, StepReport
from gpumetrics.worker.summary import WorkerStats

DONE = FinishedRequest(0, tuple(range(12)), 9, 3, 3, 0.5, (0.25, 0.25), 1.0)
STEP = StepReport(
    phase="mixed", work=(RequestWork(1, 12), RequestWork(9, 9)), prefill_tokens=9,
    decode_tokens=1, flops=2.0e6, read_bytes=1.0e6, write_bytes=4.0e3,
    lookups=(PrefixMatch((0,), (5,), 12, 4, 0), PrefixMatch((), (), 9, 0, 4)),
    lookup_hashes=(None, None),
    evicted_blocks=1, recomputed=(4,), preempted=1, kv_used_blocks=4, kv_total_blocks=8,
    kv_evictable_blocks=2, waiting=1, running=2, finished=(DONE,), duration_s=0.25,
)  # fmt: skip


def _summary(stats: WorkerStats, wall_s: float = 2.0) -> dict[str, object]:
    return stats.summary(
        model="tiny", device="cpu", attention_path="eager", wall_s=wall_s
    ).as_dict()


def test_stats_count_the_reports_by_hand() -> None:
    """Two steps, the second without lookups or a finished request: 2 steps of 2 sequences
    (max batch 8: occupancy 2/8), 21 lookup tokens of which 4 hit, 3 generated tokens over a
    2 s wall."""
    stats = WorkerStats(max_batch=8)
    stats.on_step(STEP)
    stats.on_step(
        replace(STEP, lookups=(), lookup_hashes=(), finished=(), evicted_blocks=0, recomputed=())
    )
    got = _summary(stats)
    assert got["steps"] == 2
    assert (got["requests"], got["prompt_tokens"], got["generated_tokens"]) == (1, 9, 3)
    assert (got["prefix_query_tokens"], got["prefix_hit_tokens"]) == (21, 4)
    assert got["prefix_hit_ratio"] == pytest.approx(4 / 21)
    assert (got["evicted_blocks"], got["recomputed_tokens"], got["preemptions"]) == (1, 4, 2)
    assert (got["mean_batch_sequences"], got["mean_batch_occupancy"]) == (2.0, 0.25)
    assert got["flops"] == 4.0e6
    assert got["step_s"] == 0.5
    assert got["tokens_per_second"] == 1.5


def test_the_hit_ratio_is_zero_without_lookups() -> None:
    stats = WorkerStats(max_batch=8)
    stats.on_step(replace(STEP, lookups=(), lookup_hashes=()))
    assert _summary(stats)["prefix_hit_ratio"] == 0.0
    assert _summary(WorkerStats(), wall_s=0.0)["tokens_per_second"] == 0.0
