"""The engine loop: schedule, run the model over the paged cache, sample, report.

Every step reports through `gpumetrics.hooks.EngineMetrics`, with the FLOPs and bytes of the
scheduled work computed explicitly from the cost model (one `RequestWork` per scheduled
sequence), the KV occupancy, prefix lookups, evictions, recomputes, preemptions, the queue, and
each finished request's TTFT / inter-token gaps / end-to-end time on the worker's clock (the
EngineMetrics' clock). The worker keeps its own counters too (`stats`), so a test can check
that what the hooks exported equals what happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch

from ..costmodel import ModelSpec, RequestWork, step_cost
from ..hooks import EngineMetrics
from .attention import PagedKV, build_metadata, eager_attention, resolve_path, sdpa_attention
from .block_manager import BlockManager
from .fast_decode import build_fast_decoder
from .llama import build_model
from .scheduler import Scheduler, SchedulerOutput
from .scheduler import Sequence as Seq
from .summary import WorkerStats, WorkerSummary

__all__ = ["Engine", "EngineConfig", "FinishedRequest", "check_device"]

log = logging.getLogger("gpumetrics.worker")

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_device(device: str) -> torch.device:
    """The torch device for `cpu` or `cuda[:N]`; ValueError with a hint when it is unusable."""
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r} (use cpu or cuda)") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r} (use cpu or cuda)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"{device!r} asked for, but torch {torch.__version__} sees no CUDA device "
            f"(a CPU-only build, or no GPU/driver here); use --device cpu"
        )
    return dev


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
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        self.config, self.spec = config, spec
        self.device = check_device(config.device)
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
        self.model = build_model(spec, seed=config.seed, device=self.device, dtype=_DTYPES[dtype])
        self.kv = PagedKV.allocate(
            spec.layers,
            config.kv_blocks,
            config.block_size,
            spec.kv_heads,
            spec.head_dim,
            dtype=_DTYPES[dtype],
            device=self.device,
        )
        self.fast = build_fast_decoder(
            config.fast_decode, self.model, self.kv, spec,
            max_batch=config.max_batch, kv_blocks=config.kv_blocks, device=self.device,
        )  # fmt: skip
        self.blocks = BlockManager(config.kv_blocks, config.block_size)
        self.scheduler = Scheduler(
            self.blocks,
            max_batch=config.max_batch,
            max_batch_tokens=config.max_batch_tokens,
            chunked_prefill=config.chunked_prefill,
        )
        self.attention_path, self._attend = resolve_path(config.attention)
        self._path_checked = False
        self._dtype = dtype
        self._next_id = 0
        self.stats = WorkerStats(max_batch=config.max_batch)

    # --- requests ----------------------------------------------------------------------

    def add_request(
        self, prompt: Sequence[int], max_tokens: int, *, arrival: float | None = None
    ) -> int:
        """Queue a request; returns its id. Raises ValueError if it can never fit."""
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
        self.scheduler.add(Seq(request_id, prompt, max_tokens, when))
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
        sampled = self._forward(out)
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

    def _forward(self, out: SchedulerOutput) -> list[int]:
        """Run the model over the step's tokens; greedy next tokens of the sampling rows."""
        if self.fast is not None and self.fast.applies(out):
            return self.fast.decode(out)
        ids: list[int] = []
        positions: list[int] = []
        rows: list[int] = []
        for e in out.entries:
            ids += e.seq.tokens[e.start : e.context]
            positions += range(e.start, e.context)
            if e.samples:
                rows.append(len(ids) - 1)
        spans = [(e.start, e.new_tokens, e.seq.block_table) for e in out.entries]
        dev = self.device
        with torch.inference_mode():
            logits = self._run_model(
                torch.tensor(ids, dtype=torch.long, device=dev),
                torch.tensor(positions, dtype=torch.long, device=dev),
                spans,
                torch.tensor(rows, dtype=torch.long, device=dev),
            )
            sampled: list[int] = logits.argmax(dim=-1).tolist()
        return sampled

    def _run_model(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        spans: list[tuple[int, int, list[int]]],
        rows: torch.Tensor,
    ) -> torch.Tensor:
        """The forward pass; if the fused path fails on the first step, fall back to the
        portable one for good (and say so in `attention_path`)."""
        batched = self._attend is sdpa_attention
        meta = build_metadata(spans, self.blocks.block_size, self.device, batched=batched)
        try:
            logits: torch.Tensor = self.model(ids, positions, self.kv, meta, self._attend, rows)
        except RuntimeError as exc:
            if self._path_checked or not batched:
                raise
            log.warning("attention path %s failed (%s); using eager", self.attention_path, exc)
            self.attention_path = f"eager ({self.attention_path} failed: {exc})"
            self._attend = eager_attention
            return self._run_model(ids, positions, spans, rows)
        self._path_checked = True
        return logits

    def _finish(self, seq: Seq, now: float) -> FinishedRequest:
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

    def summary(self, wall_s: float | None = None) -> WorkerSummary:
        """The run so far; `wall_s` (default: time spent in steps) is the throughput basis."""
        return self.stats.summary(
            model=self.spec.name,
            device=str(self.device),
            attention_path=(
                f"fast-decode+{self.attention_path}"
                if self.fast is not None and self.fast.steps
                else self.attention_path
            ),
            wall_s=self.stats.loop_seconds if wall_s is None else wall_s,
        )
