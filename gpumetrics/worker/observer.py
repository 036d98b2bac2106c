"""What the engine says about each step, and who listens.

After every step the engine builds one frozen `StepReport` — the scheduled work, its FLOPs and
bytes from the cost model, the cache's prefix lookups, evictions, recomputes and preemptions,
the KV occupancy and queue after the step, the requests that finished, the step's time — and
hands it to each `StepObserver` in turn. Three ship:

* `HooksObserver`: the report into `gpumetrics.hooks.EngineMetrics` (what Prometheus and OTLP
  export), call for call what an engine instrumented by hand would make;
* `summary.WorkerStats`: the worker's own running totals (the run's summary);
* `StepLog`: keeps the reports (the profiler reads step times and costs from it; tests compare
  it with what the hooks exported).

Pure Python: nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

from ..costmodel import RequestWork
from ..hooks import EngineMetrics
from .block_manager import PrefixMatch
from .sequence import Sequence

__all__ = ["FinishedRequest", "HooksObserver", "StepLog", "StepObserver", "StepReport"]


@dataclass(frozen=True, slots=True)
class FinishedRequest:
    """A completed request, its timings in seconds on the worker's clock."""

    request_id: int
    tokens: tuple[int, ...]
    """Prompt then output: the next turn of a conversation starts with these."""
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    ttft_s: float
    inter_token_s: tuple[float, ...]
    e2e_s: float

    @classmethod
    def of(cls, seq: Sequence, now: float) -> FinishedRequest:
        """The record of `seq`, finished at `now` (worker clock, seconds)."""
        times = seq.token_times
        return cls(
            request_id=seq.request_id,
            tokens=tuple(seq.tokens),
            prompt_tokens=seq.prompt_len,
            cached_tokens=seq.cached_tokens or 0,
            output_tokens=seq.output_len,
            ttft_s=max(0.0, times[0] - seq.arrival),
            inter_token_s=tuple(b - a for a, b in pairwise(times)),
            e2e_s=max(0.0, now - seq.arrival),
        )


@dataclass(frozen=True, slots=True)
class StepReport:
    """One engine step, as the engine reports it to its observers."""

    phase: str
    """prefill | decode | mixed, as `EngineMetrics.record_step` takes it."""
    work: tuple[RequestWork, ...]
    """One per scheduled sequence, in schedule order: new tokens, context, samples or not."""
    prefill_tokens: int
    """New tokens of the prefill chunks (recomputed ones included)."""
    decode_tokens: int
    """Sequences that decoded one generated token."""
    flops: float
    """Cost-model FLOPs of `work` (whole model)."""
    read_bytes: float
    """Cost-model HBM bytes read: weights and KV."""
    write_bytes: float
    """Cost-model HBM bytes written: the new tokens' KV."""
    lookups: tuple[PrefixMatch, ...]
    """Prefix lookups of the sequences admitted this step."""
    lookup_hashes: tuple[tuple[int, ...] | None, ...]
    """Per lookup: the prompt's full-block hashes at a request's first admission, else None
    (`SchedulerOutput.lookup_hashes`)."""
    evicted_blocks: int
    recomputed: tuple[int, ...]
    """Per admitted sequence with lost KV: tokens computed again."""
    preempted: int
    kv_used_blocks: int
    """KV blocks owned by a sequence after the step."""
    kv_total_blocks: int
    kv_evictable_blocks: int
    """Free KV blocks still holding a cached prefix after the step."""
    waiting: int
    """Sequences queued after the step (new and preempted)."""
    running: int
    finished: tuple[FinishedRequest, ...]
    duration_s: float
    """The step's time on the worker's clock: schedule, forward, sample, update."""

    @property
    def sequences(self) -> int:
        """Sequences scheduled in the step."""
        return len(self.work)

    @property
    def tokens(self) -> int:
        """Tokens computed in the step."""
        return self.prefill_tokens + self.decode_tokens


class StepObserver(Protocol):
    """Anything told about each step. Called on the engine's thread, after the step; the time
    spent here is the worker's reporting overhead (`WorkerSummary.hook_s`)."""

    def on_step(self, report: StepReport) -> None: ...


class HooksObserver:
    """Reports each step to `metrics` (the hooks: exported as Prometheus / OTLP)."""

    __slots__ = ("metrics",)

    def __init__(self, metrics: EngineMetrics) -> None:
        self.metrics = metrics

    def on_step(self, report: StepReport) -> None:
        m = self.metrics
        m.record_step(
            phase=report.phase,
            sequences=report.sequences,
            prefill_tokens=report.prefill_tokens,
            decode_tokens=report.decode_tokens,
            duration_s=report.duration_s,
            flops=report.flops,
            read_bytes=report.read_bytes,
            write_bytes=report.write_bytes,
        )
        for match, hashes in zip(report.lookups, report.lookup_hashes, strict=True):
            m.record_prefix_lookup(
                queried_tokens=match.queried_tokens,
                hit_tokens=match.hit_tokens,
                block_hashes=hashes,
            )
        if report.evicted_blocks:
            m.record_eviction(report.evicted_blocks)
        for tokens in report.recomputed:
            m.record_recompute(tokens)
        if report.preempted:
            m.record_preemption(report.preempted)
        m.record_kv(
            used_blocks=report.kv_used_blocks,
            total_blocks=report.kv_total_blocks,
            evictable_blocks=report.kv_evictable_blocks,
        )
        m.set_queue(report.waiting, report.running)
        for f in report.finished:
            m.record_request_finished(
                ttft_s=f.ttft_s,
                inter_token_s=f.inter_token_s,
                e2e_s=f.e2e_s,
                prompt_tokens=f.prompt_tokens,
                cached_tokens=f.cached_tokens,
                output_tokens=f.output_tokens,
            )


class StepLog:
    """Keeps every report, in order (one per step: `clear()` it between runs)."""

    __slots__ = ("reports",)

    def __init__(self) -> None:
        self.reports: list[StepReport] = []

    def on_step(self, report: StepReport) -> None:
        self.reports.append(report)

    def clear(self) -> None:
        self.reports.clear()
