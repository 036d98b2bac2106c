"""The `gpumetrics roofline` planner: the article's optimisation exercise as numbers.

For each (batch, context) decode cell: FLOPs and bytes per step on one GPU, arithmetic
intensity against the GPU's ridge, the roofline-predicted step time and tokens/s, which roof
binds, and whether the batch's KV fits in memory. Tensor parallelism divides FLOPs and
weights by `tp`; KV is divided by `tp` up to the KV head count (communication is not
modelled, so tp > 1 rows are optimistic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..costmodel import ModelSpec, Reserve, decode_batch, kv_capacity, kv_heads_per_gpu
from ..derive import Bound, bound, ridge_point, roofline_time
from ..errors import ConfigError
from ..hardware import GpuSpec
from ..units import format_bytes

__all__ = [
    "SCHEMA",
    "ContextSummary",
    "RooflinePlan",
    "RooflineRow",
    "plan",
    "plan_to_dict",
    "verdict",
]

#: Largest batch the crossover search considers.
MAX_SEARCH_BATCH = 1 << 20


@dataclass(frozen=True, slots=True)
class RooflineRow:
    """One decode cell, per GPU of the tensor-parallel group."""

    batch: int
    context: int
    flops: float
    weight_bytes: float
    kv_read_bytes: float
    kv_write_bytes: float
    predicted_step_seconds: float
    bound: Bound
    kv_bytes: float
    fits: bool
    first_compute_bound: bool = False
    largest_fitting: bool = False

    @property
    def bytes(self) -> float:
        return self.weight_bytes + self.kv_read_bytes + self.kv_write_bytes

    @property
    def arithmetic_intensity(self) -> float:
        return self.flops / self.bytes

    @property
    def tokens_per_second(self) -> float:
        return self.batch / self.predicted_step_seconds


@dataclass(frozen=True, slots=True)
class ContextSummary:
    """Per context length: where the sweep crosses the ridge and what the KV budget allows."""

    context: int
    first_compute_bound_batch: int | None
    """Smallest swept batch that is compute-bound, if any."""
    crossover_batch: int | None
    """Smallest batch (any size) that would be compute-bound; None if KV reads keep decode
    memory-bound at every batch size."""
    max_batch_fits: int
    """Largest batch whose KV fits (any size, not only swept ones)."""


@dataclass(frozen=True, slots=True)
class RooflinePlan:
    model: ModelSpec
    gpu: GpuSpec
    dtype: str
    kv_dtype: str
    tp: int
    memory_fraction: float
    peak_flops: float
    bandwidth: float
    weight_bytes_per_gpu: float
    kv_budget_bytes: float
    kv_bytes_per_token: float
    kv_capacity_tokens: int
    rows: tuple[RooflineRow, ...]
    contexts: tuple[ContextSummary, ...]
    reserve: Reserve
    """Bytes kept back per GPU for activations and CUDA graphs (not KV), and why."""

    @property
    def ridge(self) -> float:
        return ridge_point(self.peak_flops, self.bandwidth)


@dataclass(frozen=True, slots=True)
class _Setup:
    """Everything a cell needs besides its batch and context."""

    model: ModelSpec
    dtype: str
    kv_dtype: str
    tp: int
    peak: float
    bandwidth: float
    kv_per_token: float
    kv_budget: float

    def cell(self, batch: int, context: int) -> RooflineRow:
        cost = decode_batch(self.model, batch, context, dtype=self.dtype, kv_dtype=self.kv_dtype)
        kv_share = kv_heads_per_gpu(self.model, self.tp) / self.model.kv_heads
        flops = cost.flops / self.tp
        weights = cost.weight_bytes / self.tp
        kv_read = cost.kv_read_bytes * kv_share
        kv_write = cost.kv_write_bytes * kv_share
        moved = weights + kv_read + kv_write
        kv_bytes = batch * context * self.kv_per_token
        return RooflineRow(
            batch=batch,
            context=context,
            flops=flops,
            weight_bytes=weights,
            kv_read_bytes=kv_read,
            kv_write_bytes=kv_write,
            predicted_step_seconds=roofline_time(flops, moved, self.peak, self.bandwidth),
            bound=bound(flops, moved, self.peak, self.bandwidth),
            kv_bytes=kv_bytes,
            fits=0 < kv_bytes <= self.kv_budget,
        )

    def crossover(self, context: int) -> int | None:
        """Smallest batch that is compute-bound at `context` (binary search; intensity
        rises with batch at fixed context), or None below MAX_SEARCH_BATCH."""

        def compute_bound(batch: int) -> bool:
            return self.cell(batch, context).bound is Bound.COMPUTE

        if not compute_bound(MAX_SEARCH_BATCH):
            return None
        low, high = 1, MAX_SEARCH_BATCH
        while low < high:
            mid = (low + high) // 2
            if compute_bound(mid):
                high = mid
            else:
                low = mid + 1
        return low


def plan(
    model: ModelSpec,
    gpu: GpuSpec,
    *,
    batches: Sequence[int],
    contexts: Sequence[int],
    dtype: str = "bf16",
    kv_dtype: str = "bf16",
    tp: int = 1,
    memory_fraction: float = 0.9,
    reserve_bytes: float | None = None,
) -> RooflinePlan:
    """Decode roofline for every (batch, context) pair on `gpu`.

    The KV budget keeps `reserve_bytes` per GPU back for activations and CUDA graphs; None
    means the cost model's default (`costmodel.activation_reserve`).
    """
    if not batches or not contexts:
        raise ConfigError("batch/context", "need at least one batch size and one context")
    for key, values in (("batch", batches), ("context", contexts)):
        bad = [v for v in values if v <= 0]
        if bad:
            raise ConfigError(key, f"must be positive integers, got {bad}")
    try:
        peak = gpu.peak(dtype)
    except KeyError as exc:
        raise ConfigError("dtype", str(exc.args[0])) from None
    capacity = kv_capacity(
        model,
        gpu.memory_bytes,
        dtype=dtype,
        kv_dtype=kv_dtype,
        tp=tp,
        memory_fraction=memory_fraction,
        reserve_bytes=reserve_bytes,
    )
    setup = _Setup(
        model,
        dtype,
        kv_dtype,
        tp,
        peak,
        gpu.hbm_bandwidth,
        capacity.kv_bytes_per_token,
        capacity.kv_budget_bytes,
    )

    rows: list[RooflineRow] = []
    summaries: list[ContextSummary] = []
    for context in sorted(set(contexts)):
        cells = [setup.cell(b, context) for b in sorted(set(batches))]
        first = next((c for c in cells if c.bound is Bound.COMPUTE), None)
        fitting = [c for c in cells if c.fits]
        largest = fitting[-1] if fitting else None
        for cell in cells:
            rows.append(
                RooflineRow(
                    **{
                        **{f: getattr(cell, f) for f in RooflineRow.__dataclass_fields__},
                        "first_compute_bound": cell is first,
                        "largest_fitting": cell is largest,
                    }
                )
            )
        summaries.append(
            ContextSummary(
                context=context,
                first_compute_bound_batch=first.batch if first else None,
                crossover_batch=setup.crossover(context),
                max_batch_fits=capacity.sequences(context),
            )
        )
    return RooflinePlan(
        model=model,
        gpu=gpu,
        dtype=dtype,
        kv_dtype=kv_dtype,
        tp=tp,
        memory_fraction=memory_fraction,
        peak_flops=peak,
        bandwidth=gpu.hbm_bandwidth,
        weight_bytes_per_gpu=capacity.weight_bytes_per_gpu,
        kv_budget_bytes=capacity.kv_budget_bytes,
        kv_bytes_per_token=capacity.kv_bytes_per_token,
        kv_capacity_tokens=capacity.tokens,
        rows=tuple(rows),
        contexts=tuple(summaries),
        reserve=capacity.reserve,
    )


SCHEMA = "gpumetrics.roofline/v1"


def plan_to_dict(result: RooflinePlan) -> dict[str, object]:
    """The plan as JSON-ready data (schema `gpumetrics.roofline/v1`, base units, per GPU)."""
    gpu = result.gpu
    return {
        "schema": SCHEMA,
        "model": {
            "name": result.model.name,
            "params": result.model.total_params,
            "kv_bytes_per_token": result.model.kv_bytes_per_token(result.kv_dtype),
        },
        "gpu": {
            "key": gpu.key,
            "name": gpu.name,
            "source": gpu.source,
            "peak_flops": result.peak_flops,
            "hbm_bandwidth": result.bandwidth,
            "memory_bytes": gpu.memory_bytes,
            "memory_source": gpu.memory_source,
            "ridge": result.ridge,
        },
        "dtype": result.dtype,
        "kv_dtype": result.kv_dtype,
        "tp": result.tp,
        "memory_fraction": result.memory_fraction,
        "per_gpu": True,
        "weight_bytes_per_gpu": result.weight_bytes_per_gpu,
        "reserve_bytes": result.reserve.bytes,
        "reserve_why": result.reserve.why,
        "kv_budget_bytes": result.kv_budget_bytes,
        "kv_bytes_per_token_per_gpu": result.kv_bytes_per_token,
        "kv_capacity_tokens": result.kv_capacity_tokens,
        "rows": [
            {
                "batch": row.batch,
                "context": row.context,
                "flops": row.flops,
                "bytes": row.bytes,
                "weight_bytes": row.weight_bytes,
                "kv_read_bytes": row.kv_read_bytes,
                "kv_write_bytes": row.kv_write_bytes,
                "arithmetic_intensity": row.arithmetic_intensity,
                "predicted_step_seconds": row.predicted_step_seconds,
                "tokens_per_second": row.tokens_per_second,
                "bound": row.bound.value,
                "kv_bytes": row.kv_bytes,
                "fits": row.fits,
                "first_compute_bound": row.first_compute_bound,
                "largest_fitting": row.largest_fitting,
            }
            for row in result.rows
        ],
        "contexts": [
            {
                "context": c.context,
                "first_compute_bound_batch": c.first_compute_bound_batch,
                "crossover_batch": c.crossover_batch,
                "max_batch_fits": c.max_batch_fits,
            }
            for c in result.contexts
        ],
    }


def verdict(result: RooflinePlan) -> list[str]:
    """One plain sentence per context: what binds, and what would change it."""
    lines = []
    for c in result.contexts:
        fits = (
            f"KV fits up to batch {c.max_batch_fits}"
            if c.max_batch_fits
            else "not even one sequence's KV fits"
        )
        if not result.kv_budget_bytes > 0:
            lines.append(
                f"context {c.context}: the weights and the {format_bytes(result.reserve.bytes)} "
                f"activation reserve exceed {result.memory_fraction:.0%} of GPU memory; "
                f"raise --tp."
            )
        elif c.crossover_batch is None:
            lines.append(
                f"context {c.context}: memory-bound at every batch size (KV reads grow with "
                f"the batch as fast as FLOPs do); {fits}. Shorter contexts, fp8 KV or fewer "
                f"KV heads move it, a bigger batch does not."
            )
        elif c.crossover_batch > c.max_batch_fits:
            lines.append(
                f"context {c.context}: would turn compute-bound at batch {c.crossover_batch}, "
                f"but {fits}: KV capacity binds before the ridge ({result.ridge:.0f} FLOP/B)."
            )
        else:
            lines.append(
                f"context {c.context}: compute-bound from batch {c.crossover_batch}; {fits}. "
                f"Batches below {c.crossover_batch} leave FLOPs idle."
            )
    return lines
