"""FLOPs and HBM bytes of a step from its totals, with the cost model's own coefficients.

`gpumetrics.costmodel.step_cost` is linear in the step's totals — T new tokens, Σ n·c
token-context pairs, Σ c context tokens, and the logits computed — except the weight bytes of a
mixture of experts, which depend on T only (the experts T tokens are expected to touch). So
the coefficients are read from the cost model once, at start, and a step costs a few float
operations (`record()` stays within microseconds). tests/integrations/test_vllm_cost.py holds
these totals equal to `step_cost` over explicit request lists.
"""

from __future__ import annotations

from ..costmodel import ModelSpec, RequestWork, StepCost, step_cost

__all__ = ["LinearCost"]


class LinearCost:
    """Step cost from totals for one model (`dtype` weights, `kv_dtype` KV cache)."""

    __slots__ = ("_attention", "_dtype", "_kv_dtype", "_kv_read", "_kv_write", "_logit",
                 "_moe", "_per_token", "_spec", "_weights")  # fmt: skip

    def __init__(self, spec: ModelSpec, *, dtype: str = "bf16", kv_dtype: str = "bf16") -> None:
        def cost(context: int, samples: bool) -> StepCost:
            work = (RequestWork(new_tokens=1, context=context, samples=samples),)
            return step_cost(spec, work, dtype=dtype, kv_dtype=kv_dtype)

        one, two, sampled = cost(1, False), cost(2, False), cost(1, True)
        self._attention: float = two.flops - one.flops  # FLOPs per (new token x context token)
        self._per_token: float = one.flops - self._attention  # projections and FFN, per token
        self._logit: float = sampled.flops - one.flops  # LM head, per sampled token
        self._kv_read: float = two.kv_read_bytes - one.kv_read_bytes  # bytes per context token
        self._kv_write: float = one.kv_write_bytes  # bytes per new token
        self._weights: float = one.weight_bytes
        self._spec, self._dtype, self._kv_dtype, self._moe = spec, dtype, kv_dtype, spec.is_moe

    def flops(self, tokens: int, token_context: float, logits: int) -> float:
        """FLOPs of a step computing `tokens` new tokens over `token_context` (Σ n·c) pairs
        with `logits` sampled tokens."""
        return self._per_token * tokens + self._attention * token_context + self._logit * logits

    def read_bytes(self, tokens: int, context: float) -> float:
        """Bytes read: the weights (MoE: the experts `tokens` touch) + `context` KV tokens."""
        weights: float = self._weights
        if self._moe and tokens > 1:
            work = (RequestWork(new_tokens=tokens, context=tokens, samples=False),)
            weights = step_cost(
                self._spec, work, dtype=self._dtype, kv_dtype=self._kv_dtype
            ).weight_bytes
        return weights + self._kv_read * context

    def write_bytes(self, tokens: int) -> float:
        """Bytes written: the new tokens' K and V."""
        return self._kv_write * tokens
