"""A curve priced in memory, GPUs and prefill FLOPs: the rows `gpumetrics kv-size` prints.

* KV bytes of C blocks = C · block_size · (KV bytes a token costs on each GPU) · tp: the whole
  tensor-parallel group's memory, KV heads replicated when tp exceeds them (`costmodel`).
* GPUs = tp · (C · block_size) / (tokens of KV one group holds after weights): GPU memory's
  worth of KV, counted as one pool (one replica's cache, or a pooled KV store like
  Mooncake's). Caches split across independent replicas hit less than one pool of their sum.
* Prefill FLOPs saved per second: a hit on k of a prompt's P tokens saves
  f(P, 0) - f(P, k) = k·(a + b·P) FLOPs (`costmodel.step_cost`: the per-token matmuls `a`,
  and attention `b = 4·Hq·d·L` per token of context), summed over the trace's hits and
  divided by its duration (first to last arrival).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..costmodel import ModelSpec, RequestWork, kv_capacity, step_cost
from ..errors import ConfigError
from ..hardware import GpuSpec
from .mrc import MissRatioCurve

__all__ = [
    "KvCosts",
    "SizingReport",
    "SizingRow",
    "default_capacities",
    "kv_costs",
    "size",
    "smallest_tp",
]


@dataclass(frozen=True, slots=True)
class KvCosts:
    """What KV costs for one model on one GPU type (see the module doc)."""

    model: str
    gpu: str | None
    tp: int
    dtype: str
    kv_dtype: str
    memory_fraction: float
    kv_bytes_per_token: float
    """Bytes of KV one token costs on the whole TP group."""
    group_tokens: int | None
    """Tokens of KV one TP group holds after its weights (0: the weights do not fit; None:
    no GPU given)."""
    saved_flops_per_token: float
    """a: FLOPs a cached prompt token saves besides attention."""
    saved_flops_per_token_context: float
    """b: attention FLOPs a cached token saves per token of its prompt."""


def kv_costs(
    model: ModelSpec,
    gpu: GpuSpec | None,
    *,
    tp: int = 1,
    dtype: str = "bf16",
    kv_dtype: str = "bf16",
    memory_fraction: float = 0.9,
) -> KvCosts:
    """The costs of `model` on `gpu` x `tp` (vLLM-style memory budget: `memory_fraction`);
    without a GPU, KV bytes only (no GPU counts)."""
    capacity = kv_capacity(
        model, gpu.memory_bytes if gpu is not None else 1.0, dtype=dtype, kv_dtype=kv_dtype,
        tp=tp, memory_fraction=memory_fraction,
    )  # fmt: skip

    def saved_by_first_token(prompt: int) -> float:
        full = step_cost(model, [RequestWork.prefill(prompt)], dtype=dtype, kv_dtype=kv_dtype)
        hit = step_cost(model, [RequestWork.prefill(prompt, 1)], dtype=dtype, kv_dtype=kv_dtype)
        return full.flops - hit.flops

    b = saved_by_first_token(3) - saved_by_first_token(2)
    a = saved_by_first_token(2) - 2 * b
    return KvCosts(
        model=model.name,
        gpu=gpu.name if gpu is not None else None,
        tp=tp,
        dtype=dtype,
        kv_dtype=kv_dtype,
        memory_fraction=memory_fraction,
        kv_bytes_per_token=capacity.kv_bytes_per_token * tp,
        group_tokens=capacity.tokens if gpu is not None else None,
        saved_flops_per_token=a,
        saved_flops_per_token_context=b,
    )


def smallest_tp(
    model: ModelSpec,
    gpu: GpuSpec,
    *,
    dtype: str = "bf16",
    kv_dtype: str = "bf16",
    memory_fraction: float = 0.9,
    limit: int = 64,
) -> int | None:
    """The smallest power-of-two tensor-parallel degree (up to `limit`) at which the weights
    leave room for KV on `gpu`, or None."""
    tp = 1
    while tp <= limit:
        capacity = kv_capacity(
            model, gpu.memory_bytes, dtype=dtype, kv_dtype=kv_dtype, tp=tp,
            memory_fraction=memory_fraction,
        )  # fmt: skip
        if capacity.tokens > 0:
            return tp
        tp *= 2
    return None


@dataclass(frozen=True, slots=True)
class SizingRow:
    """One capacity of the table; `None` where the inputs to a column were not given."""

    capacity_blocks: int
    capacity_tokens: int
    kv_bytes: float | None
    gpus: float | None
    hit_ratio: float
    token_hit_ratio: float
    share_of_max: float
    max_hit_ratio: float
    prefill_flops_saved_per_s: float | None
    reaches_target: bool
    is_target: bool = False
    """The smallest capacity that reaches the target share of the maximum."""


@dataclass(frozen=True, slots=True)
class SizingReport:
    """The table and the verdict's numbers."""

    curve: MissRatioCurve
    rows: tuple[SizingRow, ...]
    target: float
    target_row: SizingRow | None
    doubled_row: SizingRow | None
    """The target capacity doubled: what twice the memory buys."""
    costs: KvCosts | None

    @property
    def request_rate(self) -> float | None:
        """Requests per second over the trace (None when all arrive at one instant)."""
        c = self.curve
        return c.requests / c.duration_s if c.duration_s > 0 else None


def default_capacities(curve: MissRatioCurve) -> list[int]:
    """Powers of two from the curve's first step up to its saturation (whole blocks)."""
    if not len(curve.capacities):
        return [1]
    low = max(0, math.floor(math.log2(max(float(curve.capacities[0]), 1.0))))
    high = max(low, math.ceil(math.log2(max(curve.saturation, 1.0))))
    return [1 << k for k in range(low, high + 1)]


def _row(
    curve: MissRatioCurve, blocks: int, costs: KvCosts | None, target: float, *, mark: bool
) -> SizingRow:
    hit_blocks, hit_tokens, hit_context = (float(v) for v in curve.hits(blocks))
    ratio = hit_blocks / max(curve.queried_blocks, 1.0)
    top = curve.max_hit_ratio
    share = ratio / top if top > 0 else 0.0
    tokens = blocks * curve.block_size
    kv_bytes = gpus = saved = None
    if costs is not None:
        kv_bytes = tokens * costs.kv_bytes_per_token
        if costs.group_tokens is not None:
            gpus = costs.tp * tokens / costs.group_tokens if costs.group_tokens else math.inf
        if curve.duration_s > 0:
            flops = (
                costs.saved_flops_per_token * hit_tokens
                + costs.saved_flops_per_token_context * hit_context
            )
            saved = flops / curve.duration_s
    return SizingRow(
        capacity_blocks=blocks,
        capacity_tokens=tokens,
        kv_bytes=kv_bytes,
        gpus=gpus,
        hit_ratio=ratio,
        token_hit_ratio=hit_tokens / max(curve.queried_tokens, 1.0),
        share_of_max=share,
        max_hit_ratio=top,
        prefill_flops_saved_per_s=saved,
        reaches_target=top > 0 and share >= target * (1 - 1e-12),
        is_target=mark,
    )


def size(
    curve: MissRatioCurve,
    *,
    capacities: Sequence[int] | None = None,
    costs: KvCosts | None = None,
    target: float = 0.9,
) -> SizingReport:
    """Rows at `capacities` (blocks; default `default_capacities`) plus the target's row."""
    if not 0 < target <= 1:
        raise ConfigError("target", f"must be in (0, 1], got {target}")
    points = sorted(set(capacities if capacities is not None else default_capacities(curve)))
    if any(c <= 0 for c in points):
        raise ConfigError("capacity", f"must be > 0 blocks, got {min(points)}")
    reach = curve.capacity_reaching(target * curve.max_hit_ratio)
    target_row = doubled = None
    if reach is not None and curve.max_hit_ratio > 0:
        blocks = max(1, math.ceil(reach))
        target_row = _row(curve, blocks, costs, target, mark=True)
        doubled = _row(curve, 2 * blocks, costs, target, mark=False)
    rows = [_row(curve, c, costs, target, mark=False) for c in points]
    if target_row is not None:
        rows = [r for r in rows if r.capacity_blocks != target_row.capacity_blocks]
        rows.append(target_row)
        rows.sort(key=lambda r: r.capacity_blocks)
    return SizingReport(curve, tuple(rows), target, target_row, doubled, costs)
