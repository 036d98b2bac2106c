"""KV-cache capacity: how many tokens and concurrent sequences fit on the GPUs.

Mirrors how vLLM sizes its pool: `memory_fraction` of each GPU's memory (vLLM's
`gpu_memory_utilization`, default 0.9) minus that GPU's share of the weights minus a reserve
for activations and CUDA graphs, divided by the KV bytes each token costs on one GPU.
Tensor parallelism splits weights and KV heads across `tp` GPUs; when `tp` exceeds the KV
head count, KV heads are replicated (each GPU keeps at least one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from .spec import ModelSpec, dtype_bytes

__all__ = ["KvCapacity", "kv_capacity", "kv_heads_per_gpu"]


def kv_heads_per_gpu(model: ModelSpec, tp: int) -> int:
    """KV heads each of `tp` GPUs stores: Hkv/tp, at least 1 (replicated beyond Hkv)."""
    return max(1, math.ceil(model.kv_heads / tp))


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
    reserve_bytes: float = 0.0,
) -> KvCapacity:
    """KV capacity of one model replica on `tp` GPUs of `gpu_memory_bytes` each."""
    if tp <= 0:
        raise ConfigError("tp", f"must be > 0, got {tp}")
    if not 0 < memory_fraction <= 1:
        raise ConfigError("memory_fraction", f"must be in (0, 1], got {memory_fraction}")
    if gpu_memory_bytes <= 0:
        raise ConfigError("gpu_memory_bytes", f"must be > 0, got {gpu_memory_bytes}")
    weights_per_gpu = model.weight_bytes(dtype) / tp
    per_token = (
        2 * model.layers * kv_heads_per_gpu(model, tp) * model.head_dim * dtype_bytes(kv_dtype)
    )
    budget = gpu_memory_bytes * memory_fraction - weights_per_gpu - reserve_bytes
    tokens = int(budget // per_token) if budget > 0 else 0
    return KvCapacity(budget, per_token, tokens, weights_per_gpu)
