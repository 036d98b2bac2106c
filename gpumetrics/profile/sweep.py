"""The sweep: which cells to run, how much KV each needs, and running them through a runner.

Torch-free: the cells are executed by a `CellRunner` (the reference worker's is
`gpumetrics.worker.cell_runner.WorkerRunner`; tests use a fake), so this module and its callers
never import torch. A cell that cannot fit (its sequences need more KV blocks than the pool) or that
the runner refuses (`CellSkipped`: device out of memory) is recorded as skipped, with the
reason, and the others keep running.

Cell shapes (see `CellSpec`): decode cells for every batch x context; prefill cells for every
context x chunk, with as many prompts arriving together as it takes to fill a chunk
(ceil(chunk / context), at least 1), so every prefill step computes `chunk` new tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final, Protocol

from ..costmodel import ModelSpec
from ..costmodel.fit import MemoryNeed, memory_need
from .measure import (
    DECODE,
    PREFILL,
    CellMeasurement,
    CellSkipped,
    CellSpec,
    DeviceInfo,
    KvPool,
    MeasureWindow,
    NullWindow,
    StepPlan,
)

__all__ = [
    "FILL_TOKENS",
    "CellRunner",
    "SkippedCell",
    "SweepOutcome",
    "blocks_needed",
    "decode_max_tokens",
    "max_decode_batch",
    "prompt_tokens",
    "run_sweep",
    "step_budget",
    "sweep_cells",
    "sweep_memory_need",
]

#: Token budget of the steps that fill a decode cell's batch (prefill of its prompts).
FILL_TOKENS: Final = 4096


@dataclass(frozen=True, slots=True)
class SkippedCell:
    """A cell that did not run, and why (in words a user can act on)."""

    cell: CellSpec
    reason: str


SweepOutcome = CellMeasurement | SkippedCell


class CellRunner(Protocol):
    """Runs cells on a device (the reference worker implements it)."""

    @property
    def device(self) -> DeviceInfo: ...

    @property
    def pool(self) -> KvPool: ...

    @property
    def notes(self) -> tuple[str, ...]:
        """What the report should say about how the cells ran (e.g. the decode path)."""
        ...

    def run(self, cell: CellSpec, plan: StepPlan, window: MeasureWindow) -> CellMeasurement:
        """Measure one cell; raise `CellSkipped` when it cannot run."""
        ...


def sweep_cells(
    batches: Iterable[int], contexts: Iterable[int], chunks: Iterable[int] = ()
) -> tuple[CellSpec, ...]:
    """Decode cells (context-major, batch ascending), then prefill cells (context, chunk)."""
    batch_list, context_list = sorted(set(batches)), sorted(set(contexts))
    cells = [CellSpec(DECODE, b, c) for c in context_list for b in batch_list]
    cells += [
        CellSpec(PREFILL, max(1, math.ceil(k / c)), c, k)
        for c in context_list
        for k in sorted(set(chunks))
    ]
    return tuple(cells)


def step_budget(cell: CellSpec) -> int:
    """The engine's token budget per step for the cell (max_batch_tokens)."""
    if cell.phase == PREFILL:
        assert cell.chunk is not None
        return cell.chunk
    return max(cell.batch, FILL_TOKENS)


def prompt_tokens(cell: CellSpec, plan: StepPlan) -> int:
    """Prompt length: decode prompts end `max(warmup, 1) + 1` tokens short of `context`, so
    the first timed decode step attends to `context` tokens (the step that first decodes the
    whole batch counts as warmup); prefill prompts are `context` long."""
    if cell.phase == PREFILL:
        return cell.context
    return max(1, cell.context - max(plan.warmup, 1) - 1)


def decode_max_tokens(cell: CellSpec, plan: StepPlan) -> int:
    """Output tokens a decode cell's request may produce: the first (from prefill), the
    decode steps some sequences take while others still prefill (at most one per fill
    step), the warmup and the timed steps. Nobody finishes during the timed steps."""
    fill_steps = math.ceil(cell.batch * prompt_tokens(cell, plan) / step_budget(cell)) + 1
    return 1 + fill_steps + plan.warmup + plan.step_cap


def blocks_needed(cell: CellSpec, plan: StepPlan, block_size: int) -> int:
    """KV blocks the cell's sequences hold at most at once."""
    if cell.phase == PREFILL:
        per_sequence = cell.context + 1
    else:
        per_sequence = prompt_tokens(cell, plan) + decode_max_tokens(cell, plan)
    return cell.batch * math.ceil(per_sequence / block_size)


def max_decode_batch(context: int, plan: StepPlan, block_size: int, budget_blocks: int) -> int:
    """The largest decode batch at `context` whose cell fits `budget_blocks` (by
    `blocks_needed`, the rule that marks cells as fitting): 0 if not even one sequence does.
    `blocks_needed` never shrinks as the batch grows, so a binary search finds it."""
    low, high = 0, max(budget_blocks, 0)  # every sequence holds at least one block
    while low < high:
        mid = (low + high + 1) // 2
        if blocks_needed(CellSpec(DECODE, mid, context), plan, block_size) <= budget_blocks:
            low = mid
        else:
            high = mid - 1
    return low


def sweep_memory_need(
    model: ModelSpec,
    cells: Sequence[CellSpec],
    plan: StepPlan,
    *,
    dtype: str,
    block_size: int,
    kv_blocks: int | None = None,
) -> MemoryNeed:
    """The least the sweep allocates: the weights, the KV pool (`kv_blocks`, or the smallest
    cell's need: less and no cell runs) and the activations of its largest step."""
    blocks = (
        kv_blocks
        if kv_blocks is not None
        else min(blocks_needed(c, plan, block_size) for c in cells)
    )
    return memory_need(
        model,
        dtype=dtype,
        kv_tokens=blocks * block_size,
        step_tokens=max(step_budget(c) for c in cells),
        sampling_sequences=max(c.batch for c in cells),
    )


def run_sweep(
    runner: CellRunner,
    cells: Sequence[CellSpec],
    plan: StepPlan,
    *,
    window: Callable[[], MeasureWindow] = NullWindow,
    progress: Callable[[int, int, CellSpec], None] | None = None,
) -> tuple[SweepOutcome, ...]:
    """Run every cell in order; `progress(done, total, cell)` is called before each cell and
    once at the end (with the last cell). A fresh `window()` brackets each cell's timed steps
    and its activity is attached to the measurement."""
    pool = runner.pool
    outcomes: list[SweepOutcome] = []
    for i, cell in enumerate(cells):
        if progress is not None:
            progress(i, len(cells), cell)
        need = blocks_needed(cell, plan, pool.block_size)
        if need > pool.blocks:
            outcomes.append(SkippedCell(cell, _kv_reason(need, pool)))
            continue
        cell_window = window()
        try:
            measured = runner.run(cell, plan, cell_window)
        except CellSkipped as exc:
            outcomes.append(SkippedCell(cell, str(exc)))
            continue
        activity = cell_window.activity()
        outcomes.append(replace(measured, gpu=activity) if activity is not None else measured)
    if progress is not None and cells:
        progress(len(cells), len(cells), cells[-1])
    return tuple(outcomes)


def _kv_reason(need: int, pool: KvPool) -> str:
    tokens = need * pool.block_size
    where = (
        f"the pool holds {pool.blocks}"
        if pool.blocks < pool.budget_blocks
        else f"the KV budget ({pool.budget_source}) holds {pool.budget_blocks}"
    )
    return (
        f"KV blocks insufficient: needs {need} blocks of {pool.block_size} tokens "
        f"({tokens:,} tokens, {tokens * pool.bytes_per_token / 2**20:.1f} MiB), {where}"
    )
