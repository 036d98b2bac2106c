"""KV-cache capacity: how many tokens and concurrent sequences fit on the GPUs.

Mirrors how vLLM sizes its pool: `memory_fraction` of each GPU's memory (vLLM's
`gpu_memory_utilization`, default 0.9) minus that GPU's share of the weights minus a reserve
for activations and CUDA graphs (by default `activations.activation_reserve`: the largest
prefill chunk's activations, at least 1 GiB), divided by the KV bytes each token costs on one
GPU. Tensor parallelism splits weights and KV heads across `tp` GPUs; when `tp` exceeds the
KV head count, KV heads are replicated (each GPU keeps at least one). `check_tp` refuses the
degrees vLLM refuses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from .activations import Reserve, activation_reserve
from .spec import ModelSpec, dtype_bytes

__all__ = ["KvCapacity", "check_tp", "kv_capacity", "kv_heads_per_gpu", "valid_tp"]


def kv_heads_per_gpu(model: ModelSpec, tp: int) -> int:
    """KV heads each of `tp` GPUs stores: Hkv/tp, at least 1 (replicated beyond Hkv)."""
    return max(1, math.ceil(model.kv_heads / tp))


def _tp_ok(model: ModelSpec, tp: int) -> bool:
    if model.heads % tp:
        return False
    if tp >= model.kv_heads:
        return tp % model.kv_heads == 0
    return model.kv_heads % tp == 0


def valid_tp(model: ModelSpec) -> tuple[int, ...]:
    """Tensor-parallel degrees `check_tp` accepts for `model` (divisors of Hq, in order)."""
    return tuple(tp for tp in range(1, model.heads + 1) if _tp_ok(model, tp))


def check_tp(model: ModelSpec, tp: int) -> None:
    """ConfigError unless `tp` splits the heads as vLLM requires.

    vLLM refuses a degree that does not divide the attention heads ("Total number of
    attention heads (40) must be divisible by tensor parallel size (3)") and splits KV heads
    with an exact division: Hkv/tp when tp < Hkv, whole replicas (tp/Hkv) beyond it.
    """
    if tp <= 0:
        raise ConfigError("tp", f"must be > 0, got {tp}")
    if _tp_ok(model, tp):
        return
    if model.heads % tp:
        problem = f"{tp} does not divide the {model.heads} attention heads of {model.name}"
    elif tp < model.kv_heads:
        problem = f"{tp} does not divide the {model.kv_heads} KV heads of {model.name}"
    else:
        problem = f"{tp} is not a multiple of the {model.kv_heads} KV heads of {model.name}"
    valid = ", ".join(str(t) for t in valid_tp(model))
    raise ConfigError("tp", f"{problem} (vLLM refuses it too); valid: {valid}")


@dataclass(frozen=True, slots=True)
class KvCapacity:
    """What fits per tensor-parallel group."""

    kv_budget_bytes: float
    """KV bytes available on each GPU (may be negative: the weights do not fit)."""
    kv_bytes_per_token: float
    """KV bytes one token costs on each GPU."""
    tokens: int
    """Tokens of KV the group can hold (0 if the weights do not fit)."""
    weight_bytes_per_gpu: float
    reserve: Reserve
    """Bytes kept back on each GPU for activations and CUDA graphs, and why."""

    @property
    def weights_fit(self) -> bool:
        return self.kv_budget_bytes > 0

    def sequences(self, context: int) -> int:
        """Concurrent sequences of `context` tokens each that fit."""
        if context <= 0:
            raise ConfigError("context", f"must be > 0, got {context}")
        return self.tokens // context


def kv_capacity(
    model: ModelSpec,
    gpu_memory_bytes: float,
    *,
    dtype: str = "bf16",
    kv_dtype: str = "bf16",
    tp: int = 1,
    memory_fraction: float = 0.9,
    reserve_bytes: float | None = None,
) -> KvCapacity:
    """KV capacity of one model replica on `tp` GPUs of `gpu_memory_bytes` each.

    `reserve_bytes=None` keeps back `activation_reserve(model, tp=tp)` per GPU.
    """
    check_tp(model, tp)
    if not 0 < memory_fraction <= 1:
        raise ConfigError("memory_fraction", f"must be in (0, 1], got {memory_fraction}")
    if gpu_memory_bytes <= 0:
        raise ConfigError("gpu_memory_bytes", f"must be > 0, got {gpu_memory_bytes}")
    if reserve_bytes is None:
        act_dtype = dtype if dtype_bytes(dtype) >= 2 else "bf16"  # fp8 weights, bf16 compute
        reserve = activation_reserve(model, act_dtype=act_dtype, tp=tp)
    elif reserve_bytes < 0:
        raise ConfigError("reserve_bytes", f"must be >= 0, got {reserve_bytes}")
    else:
        reserve = Reserve(float(reserve_bytes), "given")
    weights_per_gpu = model.weight_bytes(dtype) / tp
    per_token = (
        2 * model.layers * kv_heads_per_gpu(model, tp) * model.head_dim * dtype_bytes(kv_dtype)
    )
    budget = gpu_memory_bytes * memory_fraction - weights_per_gpu - reserve.bytes
    tokens = int(budget // per_token) if budget > 0 else 0
    return KvCapacity(budget, per_token, tokens, weights_per_gpu, reserve)
