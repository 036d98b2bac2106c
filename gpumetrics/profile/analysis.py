"""Per-cell derived numbers and the sweep's marks: first compute-bound, knee, largest fit.

Per measured cell, from its timed steps (`CellMeasurement`) and the roofs:

* achieved FLOP/s and bytes/s = the cost model's FLOPs and HBM bytes of the work the
  scheduler really ran (mean per timed step) ÷ the median step time, and tokens/s likewise:
  the median keeps one scheduler hiccup on a shared machine from moving the whole cell;
* arithmetic intensity = FLOPs ÷ bytes; roofline-predicted step time =
  max(FLOPs / peak, bytes / bandwidth) of the mean step; bound = which of the two is larger
  (`derive.bound`, i.e. intensity vs the ridge); MFU and MBU against the reference roof
  (and against the achievable roof when both exist); roofline fraction = predicted ÷ measured
  step time (median step; 1.0: the step runs at the roof; 0.1: ten times slower than either roof
  allows).

Marks, per group — decode cells of one context, ordered by batch; prefill cells of one
context, ordered by chunk:

* first compute-bound: the smallest swept batch (chunk) whose bound is compute;
* knee: where throughput stops scaling. Between consecutive measured cells x1 < x2 the gain
  per doubling is (tps2 / tps1) ^ (1 / log2(x2 / x1)) − 1; the knee is the first x1 whose
  gain falls below `KNEE_GAIN` (10 %): doubling the batch beyond it buys < 10 % more tokens/s;
* largest fit (decode): the largest swept batch whose KV fits the budget (and that ran).

A decode cell's KV need is its sequences' whole stay in the pool — the prompt plus every token
decoded while the batch fills, warms up and is timed (`sweep.blocks_needed`) — and the group's
batch bound (`max_batch_fits`, quoted by the verdict) is the largest batch the same rule
admits (`sweep.max_decode_batch`), so "largest fit" is never above it and the first swept
batch that does not fit is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from types import MappingProxyType
from typing import Final

from ..costmodel import ModelSpec
from ..derive import Bound, arithmetic_intensity, bound, mbu, mfu, ridge_point, roofline_time
from ..hardware import GpuSpec
from .measure import DECODE, CellMeasurement, CellSpec, GpuActivity, KvPool, StepPlan
from .planner import plan as roofline_plan
from .sweep import SkippedCell, SweepOutcome, blocks_needed, max_decode_batch

__all__ = [
    "KNEE_GAIN",
    "CellNumbers",
    "CellResult",
    "GroupSummary",
    "Mark",
    "Roof",
    "Roofs",
    "analyze",
    "cell_numbers",
    "doubling_gain",
    "find_knee",
]

#: Gain in tokens/s per doubling of batch (or chunk) below which throughput has stopped scaling.
KNEE_GAIN: Final = 0.10


class Mark(StrEnum):
    """Marks a cell can carry."""

    FIRST_COMPUTE_BOUND = "first-compute-bound"
    KNEE = "knee"
    LARGEST_FIT = "largest-fit"


@dataclass(frozen=True, slots=True)
class Roof:
    """A compute roof (FLOP/s) and a bandwidth roof (bytes/s), and where they come from:
    `kind` datasheet (GPU table), user (--peak-flops/--hbm-bandwidth) or achievable
    (measured by --calibrate)."""

    kind: str
    peak_flops: float
    bandwidth: float
    source: str

    def __post_init__(self) -> None:
        if not (self.peak_flops > 0 and self.bandwidth > 0):
            raise ValueError(f"roofs must be > 0, got {self.peak_flops}, {self.bandwidth}")

    @property
    def ridge(self) -> float:
        """FLOPs per byte where the roofs meet."""
        return ridge_point(self.peak_flops, self.bandwidth)


@dataclass(frozen=True, slots=True)
class Roofs:
    """`reference` decides bound, MFU and MBU; `achievable` (when measured beside a
    datasheet or user roof) adds MFU/MBU against what the device really reaches."""

    reference: Roof
    achievable: Roof | None = None


@dataclass(frozen=True, slots=True)
class CellNumbers:
    """Derived numbers of one measured cell (seconds, FLOP/s, bytes/s, ratios 0..1)."""

    steps: int
    step_p50: float
    step_p95: float
    step_mean: float
    tokens_per_second: float
    flops_per_step: float
    bytes_per_step: float
    achieved_flops: float
    achieved_bytes: float
    intensity: float
    predicted_step_seconds: float
    bound: Bound
    mfu: float
    mbu: float
    mfu_achievable: float | None
    mbu_achievable: float | None
    roofline_fraction: float
    mean_sequences: float
    mean_context: float | None
    kv_used_blocks: int
    kv_used_bytes: float
    gpu: GpuActivity | None


@dataclass(frozen=True, slots=True)
class CellResult:
    """One cell of the report: its numbers, or why it was skipped; whether its KV fits the
    budget; its marks."""

    cell: CellSpec
    numbers: CellNumbers | None
    skipped: str | None
    fits: bool
    marks: frozenset[Mark] = frozenset()


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """One group of cells: decode at one context (axis batch) or prefill at one context
    (axis chunk). Values are the axis values (batch or chunk) where the marks fall."""

    phase: str
    context: int
    axis: str
    first_compute_bound: int | None
    knee: int | None
    knee_gain: float | None
    """Tokens/s gain per doubling just past the knee."""
    top_gain: float | None
    """Gain per doubling between the two largest measured cells (still scaling if high)."""
    largest_fit: int | None
    max_batch_fits: int | None
    """Decode: most sequences of `context` tokens the KV budget holds (any batch)."""
    crossover_batch: int | None
    """Decode: smallest batch the cost model puts at or past the ridge (None: never)."""
    bounds: tuple[tuple[int, Bound], ...]
    """(axis value, bound) of each measured cell, ascending."""
    skipped: int


def cell_numbers(measured: CellMeasurement, roofs: Roofs) -> CellNumbers:
    """The derived numbers of one cell against `roofs` (see the module docstring)."""
    ref, ach = roofs.reference, roofs.achievable
    flops = math.fsum(s.flops for s in measured.steps)
    moved = math.fsum(s.bytes for s in measured.steps)
    per_flops, per_bytes = measured.flops_per_step, measured.bytes_per_step
    step = measured.p50
    achieved_flops, achieved_bytes = per_flops / step, per_bytes / step
    predicted = roofline_time(per_flops, per_bytes, ref.peak_flops, ref.bandwidth)
    return CellNumbers(
        steps=len(measured.steps),
        step_p50=measured.p50,
        step_p95=measured.p95,
        step_mean=measured.mean_seconds,
        tokens_per_second=measured.tokens_per_second,
        flops_per_step=per_flops,
        bytes_per_step=per_bytes,
        achieved_flops=achieved_flops,
        achieved_bytes=achieved_bytes,
        intensity=arithmetic_intensity(flops, moved),
        predicted_step_seconds=predicted,
        bound=bound(per_flops, per_bytes, ref.peak_flops, ref.bandwidth),
        mfu=mfu(achieved_flops, ref.peak_flops),
        mbu=mbu(achieved_bytes, ref.bandwidth),
        mfu_achievable=mfu(achieved_flops, ach.peak_flops) if ach else None,
        mbu_achievable=mbu(achieved_bytes, ach.bandwidth) if ach else None,
        roofline_fraction=predicted / step,
        mean_sequences=measured.mean_sequences,
        mean_context=measured.mean_context,
        kv_used_blocks=measured.kv_used_blocks,
        kv_used_bytes=measured.kv_used_bytes,
        gpu=measured.gpu,
    )


def doubling_gain(x1: int, tps1: float, x2: int, tps2: float) -> float:
    """Throughput gain per doubling of x between (x1, tps1) and (x2, tps2), x2 > x1."""
    if not (x2 > x1 > 0 and tps1 > 0 and tps2 > 0):
        raise ValueError(f"need x2 > x1 > 0 and positive throughputs, got {x1, tps1, x2, tps2}")
    return float((tps2 / tps1) ** (1.0 / math.log2(x2 / x1)) - 1.0)


def find_knee(
    points: Sequence[tuple[int, float]], threshold: float = KNEE_GAIN
) -> tuple[int, float] | None:
    """(x, gain) of the first point after which throughput gains < `threshold` per doubling,
    over (x, tokens/s) points sorted by x; None while it keeps scaling."""
    for (x1, t1), (x2, t2) in pairwise(points):
        gain = doubling_gain(x1, t1, x2, t2)
        if gain < threshold:
            return x1, gain
    return None


def analyze(
    outcomes: Sequence[SweepOutcome],
    roofs: Roofs,
    *,
    pool: KvPool,
    plan: StepPlan,
    model: ModelSpec,
    dtype: str,
) -> tuple[tuple[CellResult, ...], tuple[GroupSummary, ...]]:
    """Numbers, KV fit and marks for every cell, and one summary per group."""
    groups: dict[tuple[str, int], list[tuple[CellSpec, CellNumbers | None, str | None]]] = {}
    for outcome in outcomes:
        entry: tuple[CellSpec, CellNumbers | None, str | None]
        if isinstance(outcome, SkippedCell):
            entry = (outcome.cell, None, outcome.reason)
        else:
            entry = (outcome.cell, cell_numbers(outcome, roofs), None)
        groups.setdefault((entry[0].phase, entry[0].context), []).append(entry)
    crossover = _crossovers(model, roofs.reference, dtype, sorted({c for _, c in groups}))
    results: dict[CellSpec, CellResult] = {}
    summaries: list[GroupSummary] = []
    for (phase, context), entries in groups.items():
        decode = phase == DECODE
        entries.sort(key=lambda e: _axis(e[0]))
        measured = [(_axis(c), n) for c, n, _ in entries if n is not None]
        first = next((x for x, n in measured if n.bound is Bound.COMPUTE), None)
        points = [(x, n.tokens_per_second) for x, n in measured]
        knee = find_knee(points)
        top = doubling_gain(*points[-2], *points[-1]) if len(points) >= 2 else None
        fits = {
            c: skipped is None and blocks_needed(c, plan, pool.block_size) <= pool.budget_blocks
            for c, _, skipped in entries
        }
        largest = max((c.batch for c in fits if fits[c]), default=None) if decode else None
        for c, n, skipped in entries:
            x = _axis(c)
            marks = {
                Mark.FIRST_COMPUTE_BOUND: n is not None and x == first,
                Mark.KNEE: n is not None and knee is not None and x == knee[0],
                Mark.LARGEST_FIT: decode and fits[c] and c.batch == largest,
            }
            results[c] = CellResult(
                c, n, skipped, fits[c], frozenset(m for m, on in marks.items() if on)
            )
        summaries.append(
            GroupSummary(
                phase=phase,
                context=context,
                axis="batch" if decode else "chunk",
                first_compute_bound=first,
                knee=knee[0] if knee else None,
                knee_gain=knee[1] if knee else None,
                top_gain=top,
                largest_fit=largest,
                max_batch_fits=(
                    max_decode_batch(context, plan, pool.block_size, pool.budget_blocks)
                    if decode
                    else None
                ),
                crossover_batch=crossover[context] if decode else None,
                bounds=tuple((x, n.bound) for x, n in measured),
                skipped=sum(1 for _, n, _ in entries if n is None),
            )
        )
    ordered = tuple(results[o.cell] for o in outcomes)
    return ordered, tuple(summaries)


def _axis(cell: CellSpec) -> int:
    """The value a group is ordered by: batch for decode, chunk for prefill."""
    return cell.batch if cell.phase == DECODE or cell.chunk is None else cell.chunk


def _crossovers(
    model: ModelSpec, roof: Roof, dtype: str, contexts: list[int]
) -> dict[int, int | None]:
    """Per context, the cost model's smallest compute-bound decode batch on `roof` (the
    `gpumetrics roofline` planner's search, on these roofs)."""
    if not contexts:
        return {}
    spec = GpuSpec(
        key="profile",
        name="profile roofs",
        peak_flops=MappingProxyType({dtype: roof.peak_flops}),
        hbm_bandwidth=roof.bandwidth,
        memory_bytes=1.0,
        source=roof.source,
    )
    result = roofline_plan(model, spec, batches=[1], contexts=contexts, dtype=dtype, kv_dtype=dtype)
    return {c.context: c.crossover_batch for c in result.contexts}
