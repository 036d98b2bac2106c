"""The worker's own counters and the summary a run prints (`gpumetrics worker --json`).

Counted by the worker itself, beside the hooks, so tests can check the two agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from ..derive import batch_occupancy

if TYPE_CHECKING:
    from .engine import FinishedRequest
    from .scheduler import SchedulerOutput

__all__ = ["WorkerStats", "WorkerSummary"]


@dataclass(frozen=True, slots=True)
class WorkerSummary:
    """One run. Tokens are counted when their request finishes (as the hooks do)."""

    model: str
    device: str
    attention_path: str
    """The attention path the steps used (`eager`, `sdpa`, or a fallback note)."""
    steps: int
    requests: int
    """Finished requests."""
    prompt_tokens: int
    generated_tokens: int
    prefix_query_tokens: int
    prefix_hit_tokens: int
    evicted_blocks: int
    recomputed_tokens: int
    preemptions: int
    mean_batch_occupancy: float
    """Mean scheduled sequences per step ÷ max batch (0–1)."""
    mean_batch_sequences: float
    flops: float
    """Cost-model FLOPs of all steps (what the hooks counted)."""
    wall_s: float
    """The throughput basis: the run's wall time (the CLI) or the time spent in steps."""
    step_s: float
    """Time in steps (schedule, forward, sample, update), reporting excluded."""
    hook_s: float
    """Time inside EngineMetrics calls."""
    cost_model_s: float
    """Time computing each step's FLOPs/bytes with the cost model."""
    tokens_per_second: float
    """Generated tokens per second of `wall_s`."""

    @property
    def prefix_hit_ratio(self) -> float:
        return (
            self.prefix_hit_tokens / self.prefix_query_tokens if self.prefix_query_tokens else 0.0
        )

    def as_dict(self) -> dict[str, str | int | float]:
        out: dict[str, str | int | float] = asdict(self)
        out["prefix_hit_ratio"] = self.prefix_hit_ratio
        return out


@dataclass(slots=True)
class WorkerStats:
    """Running totals (mutable; the engine loop is the only writer)."""

    max_batch: int = 1
    steps: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prefix_query_tokens: int = 0
    prefix_hit_tokens: int = 0
    evicted_blocks: int = 0
    recomputed_tokens: int = 0
    preemptions: int = 0
    scheduled_sequences: int = 0
    flops: float = 0.0
    step_seconds: float = 0.0
    loop_seconds: float = 0.0
    hook_seconds: float = 0.0
    cost_model_seconds: float = 0.0

    def add_step(
        self,
        out: SchedulerOutput,
        finished: list[FinishedRequest],
        flops: float,
    ) -> None:
        self.steps += 1
        self.scheduled_sequences += len(out.entries)
        self.flops += flops
        self.prefix_query_tokens += sum(m.queried_tokens for m in out.lookups)
        self.prefix_hit_tokens += sum(m.hit_tokens for m in out.lookups)
        self.evicted_blocks += out.evicted_blocks
        self.recomputed_tokens += sum(out.recomputed)
        self.preemptions += out.preempted
        self.requests += len(finished)
        self.prompt_tokens += sum(f.prompt_tokens for f in finished)
        self.generated_tokens += sum(f.output_tokens for f in finished)

    def summary(
        self, *, model: str, device: str, attention_path: str, wall_s: float
    ) -> WorkerSummary:
        mean_seqs = self.scheduled_sequences / self.steps if self.steps else 0.0
        return WorkerSummary(
            model=model,
            device=device,
            attention_path=attention_path,
            steps=self.steps,
            requests=self.requests,
            prompt_tokens=self.prompt_tokens,
            generated_tokens=self.generated_tokens,
            prefix_query_tokens=self.prefix_query_tokens,
            prefix_hit_tokens=self.prefix_hit_tokens,
            evicted_blocks=self.evicted_blocks,
            recomputed_tokens=self.recomputed_tokens,
            preemptions=self.preemptions,
            mean_batch_occupancy=batch_occupancy(mean_seqs, self.max_batch),
            mean_batch_sequences=mean_seqs,
            flops=self.flops,
            wall_s=wall_s,
            step_s=self.step_seconds,
            hook_s=self.hook_seconds,
            cost_model_s=self.cost_model_seconds,
            tokens_per_second=self.generated_tokens / wall_s if wall_s > 0 else 0.0,
        )
