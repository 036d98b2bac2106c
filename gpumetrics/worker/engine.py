"""The engine loop: schedule, run the model, update, report the step to its observers.

    out = scheduler.schedule()            which sequences run, with how many tokens each
    sampled = runner.run(out)             the model over the paged cache (torch: runner.py)
    done = scheduler.update(out, sampled) progress, new cached blocks, finished sequences
    report = StepReport(...)              FLOPs and bytes of the work from the cost model, ...
    observer.on_step(report)              the hooks, the worker's own counters, any other

Each step's report carries the FLOPs and bytes of the scheduled work computed explicitly from
the cost model (one `RequestWork` per scheduled sequence), the KV occupancy, prefix lookups,
evictions, recomputes, preemptions, the queue, and each finished request's TTFT / inter-token
gaps / end-to-end time on the worker's clock (the EngineMetrics' clock). The hooks adapter
(`observer.HooksObserver`) and the worker's own counters (`stats`) are two observers of the
same reports, so a test can check that what the hooks exported equals what happened.

This module imports no torch: the default `runner.ModelRunner` is imported when an engine is
built without a runner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ..costmodel import ModelSpec, RequestWork, step_cost
from ..hooks import EngineMetrics
from .block_manager import BlockManager
from .observer import FinishedRequest, HooksObserver, StepObserver, StepReport
from .scheduler import Scheduler, SchedulerOutput
from .sequence import Sequence
from .summary import WorkerStats, WorkerSummary

__all__ = ["Engine", "EngineConfig", "StepRunner"]


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
    fast_decode: str = "auto"
    """auto | on | off: CUDA-graph decode steps (`fast_decode`); auto = on for CUDA."""
    dtype: str | None = None
    seed: int = 0
    engine_name: str = "worker-0"
    kv_predict_sample_rate: float | None = 1.0
    """The hooks' live ghost cache: highest SHARDS sample rate (None: no prediction)."""

    @property
    def resolved_dtype(self) -> str:
        return self.dtype or ("bf16" if self.device.startswith("cuda") else "fp32")


class StepRunner(Protocol):
    """What the engine needs of its model side (`runner.ModelRunner` is the one that ships)."""

    @property
    def attention_path(self) -> str:
        """The attention path the steps use (`eager`, `sdpa`, or a fallback note)."""
        ...

    @property
    def device(self) -> object:
        """Where the model runs (its `str` goes into the summary)."""
        ...

    def run(self, out: SchedulerOutput) -> list[int]:
        """The greedy next token of each entry of `out` that samples, in order."""
        ...


class Engine:
    """A paged-KV, continuously batched inference engine over a seeded random model.

    `runner` defaults to a `ModelRunner` built from `config` (a given one must be built for
    the same model, dtype, KV pool and block size). `metrics` defaults to a new EngineMetrics
    for this engine (engine label `config.engine_name`, model label the spec's name) whose
    clock is `clock`. Every step's report goes to the worker's own counters (`stats`), the
    hooks (`metrics`), then each of `observers` in order.
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        runner: StepRunner | None = None,
        metrics: EngineMetrics | None = None,
        observers: Iterable[StepObserver] = (),
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        spec, dtype = config.model, config.resolved_dtype
        self.runner = runner if runner is not None else _model_runner(config)
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
            kv_predict_sample_rate=config.kv_predict_sample_rate,
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
        self.observers: list[StepObserver] = [self.stats, HooksObserver(self.metrics), *observers]

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

    @property
    def attention_path(self) -> str:
        """The attention path the steps use (`eager`, `sdpa`, or a fallback note)."""
        return self.runner.attention_path

    # --- the loop ----------------------------------------------------------------------

    def step(self) -> list[FinishedRequest]:
        """One iteration: schedule, run the model (greedy sampling), update, report."""
        t0 = self.clock()
        out = self.scheduler.schedule()
        if not out.entries:
            if self.has_work:  # add_request admits only what fits an empty pool
                raise RuntimeError(f"the scheduler made no progress: {out}")
            return []
        sampled = self.runner.run(out)
        now = self.clock()
        done = self.scheduler.update(out, sampled, now)
        finished = tuple(FinishedRequest.of(seq, now) for seq in done)
        self._notify(out, finished, now - t0)
        self.stats.loop_seconds += self.clock() - t0
        return list(finished)

    def run(self, max_steps: int | None = None) -> list[FinishedRequest]:
        """Step until no request is left (or `max_steps`); the finished requests in order."""
        finished: list[FinishedRequest] = []
        steps = 0
        while self.has_work and (max_steps is None or steps < max_steps):
            finished += self.step()
            steps += 1
        return finished

    def _notify(
        self, out: SchedulerOutput, finished: tuple[FinishedRequest, ...], duration_s: float
    ) -> None:
        """Build the step's report and hand it to every observer (both parts timed: the
        cost model's and the observers' share of the worker's reporting overhead)."""
        t0 = self.clock()
        report = self._report(out, finished, duration_s)
        t1 = self.clock()
        for observer in self.observers:
            observer.on_step(report)
        t2 = self.clock()
        self.stats.cost_model_seconds += t1 - t0
        self.stats.hook_seconds += t2 - t1

    def _report(
        self, out: SchedulerOutput, finished: tuple[FinishedRequest, ...], duration_s: float
    ) -> StepReport:
        work = tuple(RequestWork(e.new_tokens, e.context, e.samples) for e in out.entries)
        cost = step_cost(self.spec, work, dtype=self._dtype, kv_dtype=self._dtype)
        return StepReport(
            phase=out.phase,
            work=work,
            prefill_tokens=sum(e.new_tokens for e in out.entries if not e.decode),
            decode_tokens=sum(1 for e in out.entries if e.decode),
            flops=cost.flops,
            read_bytes=cost.read_bytes,
            write_bytes=cost.kv_write_bytes,
            lookups=out.lookups,
            lookup_hashes=out.lookup_hashes,
            evicted_blocks=out.evicted_blocks,
            recomputed=out.recomputed,
            preempted=out.preempted,
            kv_used_blocks=self.blocks.num_used,
            kv_total_blocks=self.blocks.num_blocks,
            kv_evictable_blocks=self.blocks.num_evictable,
            waiting=len(self.scheduler.waiting),
            running=len(self.scheduler.running),
            finished=finished,
            duration_s=duration_s,
        )

    def summary(self, wall_s: float | None = None) -> WorkerSummary:
        """The run so far; `wall_s` (default: time spent in steps) is the throughput basis."""
        return self.stats.summary(
            model=self.spec.name,
            device=str(self.runner.device),
            attention_path=self.attention_path,
            wall_s=self.stats.loop_seconds if wall_s is None else wall_s,
        )


def _model_runner(config: EngineConfig) -> StepRunner:
    """The torch model side for `config` (imports torch)."""
    from .runner import ModelRunner  # noqa: PLC0415 - torch only when the engine needs it

    return ModelRunner(
        config.model,
        device=config.device,
        dtype=config.resolved_dtype,
        kv_blocks=config.kv_blocks,
        block_size=config.block_size,
        attention=config.attention,
        fast_decode=config.fast_decode,
        max_batch=config.max_batch,
        seed=config.seed,
    )
