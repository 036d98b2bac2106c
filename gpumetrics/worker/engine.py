"""The engine loop: schedule, run the model over the paged cache, sample, report.

Every step reports through `gpumetrics.hooks.EngineMetrics`, with the FLOPs and bytes of the
scheduled work computed explicitly from the cost model (one `RequestWork` per scheduled
sequence), the KV occupancy, prefix lookups, evictions, recomputes, preemptions, the queue, and
each finished request's TTFT / inter-token gaps / end-to-end time on the worker's clock (the
EngineMetrics' clock). The worker keeps its own counters too (`stats`), so a test can check
that what the hooks exported equals what happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise

from ..costmodel import ModelSpec, RequestWork, step_cost
from ..hooks import EngineMetrics
from .block_manager import BlockManager
from .runner import ModelRunner
from .scheduler import Scheduler, SchedulerOutput
from .sequence import Sequence
from .summary import WorkerStats, WorkerSummary

__all__ = ["Engine", "EngineConfig", "FinishedRequest"]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How the worker is built. `dtype` None: fp32 on CPU, bf16 on CUDA (weights and KV)."""

    model: ModelSpec
    device: str = "cpu"
    kv_blocks: int = 128
    block_size: int = 16
    max_batch: int = 16
    max_batch_tokens: int = 512
    chunked_prefill: bool = True
    attention: str = "auto"
    dtype: str | None = None
    seed: int = 0
    engine_name: str = "worker-0"

    @property
    def resolved_dtype(self) -> str:
        return self.dtype or ("bf16" if self.device.startswith("cuda") else "fp32")


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


class Engine:
    """A paged-KV, continuously batched inference engine over a seeded random model.

    `metrics` defaults to a new EngineMetrics for this engine (engine label
    `config.engine_name`, model label the spec's name) whose clock is `clock`.
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        metrics: EngineMetrics | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        spec, dtype = config.model, config.resolved_dtype
        self.runner = ModelRunner(
            spec,
            device=config.device,
            dtype=dtype,
            kv_blocks=config.kv_blocks,
            block_size=config.block_size,
            attention=config.attention,
            seed=config.seed,
        )
        self.config, self.spec = config, spec
        self.metrics = metrics or EngineMetrics(
            config.engine_name,
            spec.name,
            model_spec=spec,
            dtype=dtype,
            kv_dtype=dtype,
            max_batch_sequences=config.max_batch,
            max_batch_tokens=config.max_batch_tokens,
            kv_block_size=config.block_size,
            kv_capacity_blocks=config.kv_blocks,
            clock=clock,
        )
        self.clock = self.metrics.clock
        self.blocks = BlockManager(config.kv_blocks, config.block_size)
        self.scheduler = Scheduler(
            self.blocks,
            max_batch=config.max_batch,
            max_batch_tokens=config.max_batch_tokens,
            chunked_prefill=config.chunked_prefill,
        )
        self._dtype = dtype
        self._next_id = 0
        self.stats = WorkerStats(max_batch=config.max_batch)

    # --- requests ----------------------------------------------------------------------

    def add_request(
        self, prompt: Iterable[int], max_tokens: int, *, arrival: float | None = None
    ) -> int:
        """Queue a request; returns its id. Raises ValueError if it can never fit."""
        prompt = list(prompt)
        total = len(prompt) + max_tokens
        if not prompt or max_tokens <= 0:
            raise ValueError("need a non-empty prompt and max_tokens > 0")
        if total > self.spec.max_context:
            raise ValueError(f"{total} tokens exceed the model's context {self.spec.max_context}")
        if self.blocks.blocks_for(total) > self.blocks.num_blocks:
            raise ValueError(f"{total} tokens need more than the {self.blocks.num_blocks} blocks")
        if not self.config.chunked_prefill and total > self.config.max_batch_tokens:
            raise ValueError(f"{total} tokens exceed max_batch_tokens without chunked prefill")
        if any(not 0 <= t < self.spec.vocab for t in prompt):
            raise ValueError(f"token ids must be in [0, {self.spec.vocab})")
        request_id, self._next_id = self._next_id, self._next_id + 1
        when = self.clock() if arrival is None else arrival
        self.scheduler.add(Sequence(request_id, prompt, max_tokens, when))
        return request_id

    @property
    def has_work(self) -> bool:
        """Requests waiting or running."""
        return self.scheduler.has_work

    # --- the loop ----------------------------------------------------------------------

    def step(self) -> list[FinishedRequest]:
        """One iteration: schedule, forward, sample greedily, update, report."""
        t0 = self.clock()
        out = self.scheduler.schedule()
        if not out.entries:
            if self.has_work:  # add_request admits only what fits an empty pool
                raise RuntimeError(f"the scheduler made no progress: {out}")
            return []
        sampled = self.runner.run(out)
        now = self.clock()
        done = self.scheduler.update(out, sampled, now)
        finished = [self._finish(seq, now) for seq in done]
        self.stats.step_seconds += now - t0
        self._report(out, finished, now - t0)
        self.stats.loop_seconds += self.clock() - t0
        return finished

    def run(self, max_steps: int | None = None) -> list[FinishedRequest]:
        """Step until no request is left (or `max_steps`); the finished requests in order."""
        finished: list[FinishedRequest] = []
        steps = 0
        while self.has_work and (max_steps is None or steps < max_steps):
            finished += self.step()
            steps += 1
        return finished

    def _finish(self, seq: Sequence, now: float) -> FinishedRequest:
        times = seq.token_times
        return FinishedRequest(
            request_id=seq.request_id,
            tokens=tuple(seq.tokens),
            prompt_tokens=seq.prompt_len,
            cached_tokens=seq.cached_tokens or 0,
            output_tokens=seq.output_len,
            ttft_s=max(0.0, times[0] - seq.arrival),
            inter_token_s=tuple(b - a for a, b in pairwise(times)),
            e2e_s=max(0.0, now - seq.arrival),
        )

    def _report(self, out: SchedulerOutput, finished: list[FinishedRequest], dur: float) -> None:
        """Count the step in `stats` and hand it to the hooks (timed: the hooks' overhead)."""
        t0 = self.clock()
        work = [RequestWork(e.new_tokens, e.context, e.samples) for e in out.entries]
        cost = step_cost(self.spec, work, dtype=self._dtype, kv_dtype=self._dtype)
        decodes = sum(1 for e in out.entries if e.decode)
        prefill = sum(e.new_tokens for e in out.entries if not e.decode)
        self.stats.add_step(out, finished, cost.flops)
        t1 = self.clock()
        m = self.metrics
        m.record_step(
            phase=out.phase,
            sequences=len(out.entries),
            prefill_tokens=prefill,
            decode_tokens=decodes,
            duration_s=dur,
            flops=cost.flops,
            read_bytes=cost.read_bytes,
            write_bytes=cost.kv_write_bytes,
        )
        for match in out.lookups:
            m.record_prefix_lookup(queried_tokens=match.queried_tokens, hit_tokens=match.hit_tokens)
        if out.evicted_blocks:
            m.record_eviction(out.evicted_blocks)
        for tokens in out.recomputed:
            m.record_recompute(tokens)
        if out.preempted:
            m.record_preemption(out.preempted)
        m.record_kv(
            used_blocks=self.blocks.num_used,
            total_blocks=self.blocks.num_blocks,
            evictable_blocks=self.blocks.num_evictable,
        )
        m.set_queue(len(self.scheduler.waiting), len(self.scheduler.running))
        for f in finished:
            m.record_request_finished(
                ttft_s=f.ttft_s,
                inter_token_s=f.inter_token_s,
                e2e_s=f.e2e_s,
                prompt_tokens=f.prompt_tokens,
                cached_tokens=f.cached_tokens,
                output_tokens=f.output_tokens,
            )
        t2 = self.clock()
        self.stats.cost_model_seconds += t1 - t0
        self.stats.hook_seconds += t2 - t1

    @property
    def attention_path(self) -> str:
        """The attention path the steps use (`eager`, `sdpa`, or a fallback note)."""
        return self.runner.attention_path

    def summary(self, wall_s: float | None = None) -> WorkerSummary:
        """The run so far; `wall_s` (default: time spent in steps) is the throughput basis."""
        return self.stats.summary(
            model=self.spec.name,
            device=str(self.runner.device),
            attention_path=self.attention_path,
            wall_s=self.stats.loop_seconds if wall_s is None else wall_s,
        )
