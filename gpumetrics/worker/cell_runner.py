"""Run the reference worker at a fixed batch x context (or prefill chunk) and time its steps.

`WorkerRunner` implements `gpumetrics.profile.sweep.CellRunner`: it builds one `Engine` for a
whole sweep (one model, one KV pool sized for the largest cell within the device's budget)
and, per cell, gives the engine a fresh block manager and scheduler with the cell's batch and
token budget, queues random prompts (no prefix hits) and times the steps:

* decode: `batch` prompts are prefilled (untimed), then every step that decodes all `batch`
  sequences at once is a decode step; after the warmup, the timed steps start at `context`
  tokens per sequence (one more each step);
* prefill: rounds of `batch` prompts of `context` tokens with one output token each, computed
  in chunks of `chunk` tokens (the engine's chunked prefill); every step is timed after the
  warmup.

Each step's FLOPs and bytes are what the engine itself reports to its observers — the cost
model over the work the scheduler really ran — kept by an `observer.StepLog`; its time is the
engine's own step time (schedule, forward, sample, update; the `.tolist()` of the sampled
tokens synchronises CUDA). Records are plain (`gpumetrics.profile.measure`): no torch types.
"""

from __future__ import annotations

import os
import platform
import random
import time
from collections.abc import Sequence

import torch

from ..costmodel import ModelSpec
from ..profile.measure import (
    DECODE,
    CellMeasurement,
    CellSkipped,
    CellSpec,
    DeviceInfo,
    KvPool,
    MeasureWindow,
    StepPlan,
    StepRecord,
)
from ..profile.sweep import blocks_needed, decode_max_tokens, prompt_tokens, step_budget
from .block_manager import BlockManager
from .engine import Engine, EngineConfig
from .observer import StepLog
from .runner import ModelRunner, check_device
from .scheduler import Scheduler

__all__ = ["CUDA_RESERVE_BYTES", "WorkerRunner", "cuda_memory_free", "device_info"]

#: GPU memory kept back from the KV budget for activations and the allocator (bytes).
CUDA_RESERVE_BYTES = 2 << 30
#: Shares of free memory the KV budget may take: GPU (vLLM's default 0.9), host RAM.
_CUDA_FRACTION, _HOST_FRACTION = 0.9, 0.5


def device_info(device: str, dtype: str) -> DeviceInfo:
    """Name, NVML-style UUID and threads of `device` (cpu | cuda[:N])."""
    dev = check_device(device)
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        uuid = getattr(props, "uuid", None)
        return DeviceInfo(
            kind="cuda",
            name=torch.cuda.get_device_name(dev),
            dtype=dtype,
            uuid=f"GPU-{uuid}" if uuid is not None else None,
            torch_version=torch.__version__,
        )
    return DeviceInfo(
        kind="cpu",
        name=_cpu_name(),
        dtype=dtype,
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
    )


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


class WorkerRunner:
    """Runs profile cells on the reference worker (see the module docstring).

    `kv_blocks` fixes the pool (and the budget); by default the budget is what the device's
    free memory allows after the weights (CUDA: 0.9 x free − weights − 2 GiB; CPU: half the
    available RAM − weights) and the pool is the largest cell's need within it. Raises
    ValueError for an unusable device or a model the worker cannot run.
    """

    def __init__(
        self,
        model: ModelSpec,
        cells: Sequence[CellSpec],
        plan: StepPlan,
        *,
        device: str = "cpu",
        kv_blocks: int | None = None,
        block_size: int = 16,
        dtype: str | None = None,
        attention: str = "auto",
        fast_decode: str = "auto",
        seed: int = 0,
    ) -> None:
        if model.is_moe:
            raise ValueError(f"{model.name} is mixture-of-experts; the worker runs dense models")
        if not cells:
            raise ValueError("no cells to run")
        dev = check_device(device)
        base = EngineConfig(model, device=device, dtype=dtype)
        self._dtype = base.resolved_dtype
        self._model, self._seed = model, seed
        per_token = model.kv_bytes_per_token(self._dtype)
        if kv_blocks is not None:
            budget, source = kv_blocks, "--kv-blocks"
        else:
            budget, source = _budget_blocks(dev, model, self._dtype, block_size * per_token)
        need = max(blocks_needed(c, plan, block_size) for c in cells)
        blocks = max(1, min(need, budget))
        self._pool = KvPool(blocks, block_size, per_token, max(budget, 0), source)
        self._device = device_info(device, self._dtype)
        self._log = StepLog()
        config = EngineConfig(
            model,
            device=device,
            kv_blocks=blocks,
            block_size=block_size,
            max_batch=max(c.batch for c in cells),
            max_batch_tokens=max(step_budget(c) for c in cells),
            attention=attention,
            fast_decode=fast_decode,
            dtype=dtype,
            seed=seed,
            engine_name="profile",
        )
        self.model_runner = ModelRunner(
            model,
            device=device,
            dtype=config.resolved_dtype,
            kv_blocks=blocks,
            block_size=block_size,
            attention=attention,
            fast_decode=fast_decode,
            max_batch=config.max_batch,
            seed=seed,
        )
        """The torch side of the engine (its fast decoder, if any, is `.fast`)."""
        fast = self.model_runner.fast
        self._notes: tuple[str, ...] = (
            ()
            if fast is None
            else (
                f"decode steps ran the worker's fast path ({fast.description}); "
                "--fast-decode off times the reference path",
            )
        )
        self.engine = Engine(config, runner=self.model_runner, observers=[self._log])
        # One throwaway request: torch's lazy first-call set-up is not the first cell's cost.
        self.engine.add_request([0, 1], 2)
        self.engine.run()
        self._log.clear()

    @property
    def device(self) -> DeviceInfo:
        return self._device

    @property
    def pool(self) -> KvPool:
        return self._pool

    @property
    def notes(self) -> tuple[str, ...]:
        """The decode path the cells ran, when it is the fast one."""
        return self._notes

    def run(self, cell: CellSpec, plan: StepPlan, window: MeasureWindow) -> CellMeasurement:
        """Measure `cell`; CellSkipped when it cannot run (too long for the model, KV pool
        too small, device out of memory)."""
        prompt = prompt_tokens(cell, plan)
        outputs = decode_max_tokens(cell, plan) if cell.phase == DECODE else 1
        if prompt + outputs > self._model.max_context:
            raise CellSkipped(
                f"{prompt + outputs} tokens per sequence exceed {self._model.name}'s "
                f"max context {self._model.max_context}"
            )
        if blocks_needed(cell, plan, self._pool.block_size) > self._pool.blocks:
            raise CellSkipped(f"KV blocks insufficient: the pool holds {self._pool.blocks}")
        engine = self.engine
        # A fresh pool and queue per cell: nothing cached or running carries over.
        engine.blocks = BlockManager(self._pool.blocks, self._pool.block_size)
        engine.scheduler = Scheduler(
            engine.blocks, max_batch=cell.batch, max_batch_tokens=step_budget(cell)
        )
        rng = random.Random(f"{self._seed}/{cell.label}")
        try:
            if cell.phase == DECODE:
                for _ in range(cell.batch):
                    engine.add_request(self._prompt(rng, prompt), outputs)
                return self._decode(cell, plan, window)
            return self._prefill(cell, plan, window, rng)
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            first = str(exc).splitlines()[0] if str(exc) else "CUDA out of memory"
            raise CellSkipped(f"device out of memory: {first}") from None
        except ValueError as exc:  # add_request refusing a request
            raise CellSkipped(str(exc)) from None
        finally:
            self._log.clear()

    def _prompt(self, rng: random.Random, tokens: int) -> list[int]:
        return [rng.randrange(self._model.vocab) for _ in range(tokens)]

    def _decode(self, cell: CellSpec, plan: StepPlan, window: MeasureWindow) -> CellMeasurement:
        engine, log = self.engine, self._log
        guard = decode_max_tokens(cell, plan)
        for _ in range(guard):  # fill: until one step decodes the whole batch
            engine.step()
            last = log.reports[-1] if log.reports else None
            if last is not None and (last.phase, last.sequences) == (DECODE, cell.batch):
                break
        else:
            raise CellSkipped(f"the batch of {cell.batch} never decoded together (preempted?)")
        for _ in range(max(plan.warmup, 1) - 1):
            engine.step()
        return self._timed(cell, plan, window, track_context=True)

    def _prefill(
        self, cell: CellSpec, plan: StepPlan, window: MeasureWindow, rng: random.Random
    ) -> CellMeasurement:
        engine = self.engine
        for _ in range(plan.warmup):
            if not engine.has_work:
                self._queue_round(cell, rng)
            engine.step()
        return self._timed(cell, plan, window, track_context=False, refill=rng)

    def _queue_round(self, cell: CellSpec, rng: random.Random) -> None:
        for _ in range(cell.batch):
            self.engine.add_request(self._prompt(rng, cell.context), 1)

    def _timed(
        self,
        cell: CellSpec,
        plan: StepPlan,
        window: MeasureWindow,
        *,
        track_context: bool,
        refill: random.Random | None = None,
    ) -> CellMeasurement:
        engine, log = self.engine, self._log
        min_seconds = max(plan.min_seconds, window.min_seconds)
        records: list[StepRecord] = []
        used = 0
        window.begin()
        started = time.perf_counter()
        while len(records) < plan.step_cap:
            if refill is not None and not engine.has_work:
                self._queue_round(cell, refill)
            before = len(log.reports)
            engine.step()
            if len(log.reports) == before:
                break  # nothing was scheduled
            step = log.reports[-1]
            if track_context and not (step.phase == DECODE and step.sequences == cell.batch):
                break  # a sequence finished early: the cell's shape is gone
            running = engine.scheduler.running
            context = (
                sum(s.num_computed for s in running) / len(running)
                if track_context and running
                else None
            )
            used = max(used, engine.blocks.num_used)
            moved = step.read_bytes + step.write_bytes
            records.append(
                StepRecord(step.duration_s, step.flops, moved, step.tokens, step.sequences, context)
            )
            if len(records) >= plan.steps and time.perf_counter() - started >= min_seconds:
                break
        window.end()
        if not records:
            raise CellSkipped("no step ran")
        if not track_context:  # a prefill round frees its blocks in its last step
            used = max(used, cell.batch * engine.blocks.blocks_for(cell.context))
        return CellMeasurement(
            cell=cell,
            steps=tuple(records),
            kv_used_blocks=used,
            kv_used_bytes=used * self._pool.block_size * self._pool.bytes_per_token,
        )


def _budget_blocks(
    dev: torch.device, model: ModelSpec, dtype: str, block_bytes: float
) -> tuple[int, str]:
    """KV blocks the device's memory allows after the weights, and how that was derived."""
    weights = model.weight_bytes(dtype)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        budget = free * _CUDA_FRACTION - weights - CUDA_RESERVE_BYTES
        source = "0.9 x free GPU memory - weights - 2 GiB reserve"
    else:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = 8 << 30
        budget = available * _HOST_FRACTION - weights
        source = "half the available host memory - weights"
    return max(0, int(budget // block_bytes)), source


def cuda_memory_free(device: str) -> tuple[int, str]:
    """Free bytes on a CUDA device as the driver reports them (`torch.cuda.mem_get_info`;
    `nvidia-smi --query-gpu=memory.free`), and a label for messages: `NVIDIA H200 (cuda,
    free)`. For `costmodel.fit.check_fit` at command start."""
    dev = torch.device(device)
    free, _total = torch.cuda.mem_get_info(dev)
    return free, f"{torch.cuda.get_device_name(dev)} ({device}, free)"
