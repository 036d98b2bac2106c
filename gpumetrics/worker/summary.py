"""The worker's own counters and the summary a run prints (`gpumetrics worker --json`).

`WorkerStats` is a step observer: it counts the same step reports the hooks adapter turns
into metrics, on its own, so tests can check the two agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..derive import batch_occupancy, hit_ratio
from .observer import StepReport

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
    """Time inside the step observers (the hooks adapter, and the worker's own counters)."""
    cost_model_s: float
    """Time building each step's report (its FLOPs/bytes from the cost model)."""
    tokens_per_second: float
    """Generated tokens per second of `wall_s`."""

    @property
    def prefix_hit_ratio(self) -> float:
        """Prefix-cache hit ratio in tokens (`derive.hit_ratio`); 0 with no lookups."""
        ratio = hit_ratio(self.prefix_hit_tokens, self.prefix_query_tokens)
        return 0.0 if ratio is None else ratio

    def as_dict(self) -> dict[str, str | int | float]:
        out: dict[str, str | int | float] = asdict(self)
        out["prefix_hit_ratio"] = self.prefix_hit_ratio
        return out


@dataclass(slots=True)
class WorkerStats:
    """Running totals (mutable): the counts from each step's report (`on_step`, a
    StepObserver); the loop, hook and cost-model seconds from the engine loop, which times
    what a report cannot hold."""

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

    def on_step(self, report: StepReport) -> None:
        self.steps += 1
        self.scheduled_sequences += report.sequences
        self.flops += report.flops
        self.prefix_query_tokens += sum(m.queried_tokens for m in report.lookups)
        self.prefix_hit_tokens += sum(m.hit_tokens for m in report.lookups)
        self.evicted_blocks += report.evicted_blocks
        self.recomputed_tokens += sum(report.recomputed)
        self.preemptions += report.preempted
        self.requests += len(report.finished)
        self.prompt_tokens += sum(f.prompt_tokens for f in report.finished)
        self.generated_tokens += sum(f.output_tokens for f in report.finished)
        self.step_seconds += report.duration_s

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
