"""FLOPs and bytes of one engine step, for any mix of prefill and decode requests.

Conventions (REFERENCE.md §2), for a step scheduling requests r with n_r new tokens and
context c_r (tokens in the KV cache for r after this step, the new ones included):

* A FLOP is one multiply or one add: a (m x k) @ (k x n) matmul costs 2·m·k·n.
* Attention is counted the way vLLM's `perf.py` and torch's FlopCounterMode count it:
  QKᵀ and PV over all n·c query-key pairs, 4·Hq·d·L·Σ n·c, **without causal halving**.
  During prefill a causal kernel that skips masked tiles executes about half of that term;
  the exact causal pair count is Σ [n(c−n) + n(n+1)/2] (see `causal_pairs`).
* Bytes are HBM traffic: every weight read once per step (MoE: the experts the step's
  tokens are expected to touch), K and V of the whole context read, new K and V written.
  Activations are not counted (MBU's usual definition).
* Norms, RoPE, softmax, biases and residual adds are < 1% of FLOPs and not counted; bias
  weights (Qwen2's Q/K/V) are read every step and counted in the bytes, norm weights not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from .spec import ModelSpec, dtype_bytes

__all__ = [
    "RequestWork",
    "StepCost",
    "causal_pairs",
    "decode_batch",
    "expected_experts_touched",
    "step_cost",
]


@dataclass(frozen=True, slots=True)
class RequestWork:
    """One request's share of a step: `new_tokens` computed, `context` tokens attended to
    (including the new ones), and whether it samples a token (computes logits) this step."""

    new_tokens: int
    context: int
    samples: bool = True

    def __post_init__(self) -> None:
        if self.new_tokens <= 0:
            raise ConfigError("new_tokens", f"must be > 0, got {self.new_tokens}")
        if self.context < self.new_tokens:
            raise ConfigError(
                "context", f"must be >= new_tokens ({self.new_tokens}), got {self.context}"
            )

    @classmethod
    def prefill(cls, prompt: int, cached: int = 0) -> RequestWork:
        """Prefill of `prompt` tokens of which the first `cached` hit the prefix cache."""
        return cls(new_tokens=prompt - cached, context=prompt)

    @classmethod
    def decode(cls, context: int) -> RequestWork:
        """One decode token for a sequence whose KV will hold `context` tokens."""
        return cls(new_tokens=1, context=context)


@dataclass(frozen=True, slots=True)
class StepCost:
    """FLOPs by component and HBM bytes of one step (whole model, all GPUs together)."""

    qkv_flops: float
    o_proj_flops: float
    attention_flops: float
    ffn_flops: float
    router_flops: float
    lm_head_flops: float
    weight_bytes: float
    kv_read_bytes: float
    kv_write_bytes: float
    tokens: int
    sequences: int

    @property
    def flops(self) -> float:
        return (
            self.qkv_flops
            + self.o_proj_flops
            + self.attention_flops
            + self.ffn_flops
            + self.router_flops
            + self.lm_head_flops
        )

    @property
    def read_bytes(self) -> float:
        return self.weight_bytes + self.kv_read_bytes

    @property
    def bytes(self) -> float:
        return self.read_bytes + self.kv_write_bytes

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte of HBM traffic."""
        return self.flops / self.bytes


def causal_pairs(new_tokens: int, context: int) -> int:
    """Exact causal query-key pairs: Σ [n(c−n) + n(n+1)/2] for one request."""
    return new_tokens * (context - new_tokens) + new_tokens * (new_tokens + 1) // 2


def expected_experts_touched(experts: int, active: int, tokens: int) -> float:
    """Distinct experts a step's `tokens` route to, per layer, under uniform top-k routing:
    E·(1 − (1 − k/E)^T). One decode token reads k experts; a large batch reads all E."""
    if experts <= 1:
        return 1.0
    return experts * (1.0 - (1.0 - active / experts) ** tokens)


def step_cost(
    model: ModelSpec,
    requests: Iterable[RequestWork],
    *,
    dtype: str = "bf16",
    kv_dtype: str = "bf16",
) -> StepCost:
    """Cost of one step over `requests` (see module docstring for conventions)."""
    work: Sequence[RequestWork] = tuple(requests)
    if not work:
        raise ConfigError("requests", "a step needs at least one request")
    return _cost(
        model,
        tokens=sum(r.new_tokens for r in work),
        token_context=sum(r.new_tokens * r.context for r in work),
        context=sum(r.context for r in work),
        logits=sum(1 for r in work if r.samples),
        sequences=len(work),
        dtype=dtype,
        kv_dtype=kv_dtype,
    )


def _cost(
    model: ModelSpec,
    *,
    tokens: int,
    token_context: int,
    context: int,
    logits: int,
    sequences: int,
    dtype: str,
    kv_dtype: str,
) -> StepCost:
    """The formulas, over the step's totals T = Σn, TC = Σn·c, C = Σc, N_logits."""
    m, t = model, tokens
    w_b, kv_b = dtype_bytes(dtype), dtype_bytes(kv_dtype)
    d_qkv = m.hidden * (m.heads + 2 * m.kv_heads) * m.head_dim
    experts_read = expected_experts_touched(m.experts, m.active_experts, t)
    weights = (
        m.layers
        * (
            m.attention_params_per_layer
            + m.attention_bias_params_per_layer
            + experts_read * m.expert_params
            + m.router_params_per_layer
        )
        + m.hidden * m.vocab
    ) * w_b
    kv_per_token_layer = 2 * m.kv_heads * m.head_dim * kv_b
    return StepCost(
        qkv_flops=2.0 * t * d_qkv * m.layers,
        o_proj_flops=2.0 * t * m.heads * m.head_dim * m.hidden * m.layers,
        attention_flops=4.0 * m.heads * m.head_dim * m.layers * token_context,
        ffn_flops=2.0 * t * m.hidden * 3 * m.intermediate * m.active_experts * m.layers,
        router_flops=2.0 * t * m.hidden * m.experts * m.layers if m.is_moe else 0.0,
        lm_head_flops=2.0 * logits * m.hidden * m.vocab,
        weight_bytes=weights,
        kv_read_bytes=kv_per_token_layer * m.layers * context,
        kv_write_bytes=kv_per_token_layer * m.layers * t,
        tokens=t,
        sequences=sequences,
    )


def decode_batch(
    model: ModelSpec, batch: int, context: int, *, dtype: str = "bf16", kv_dtype: str = "bf16"
) -> StepCost:
    """A pure decode step: `batch` sequences, each with `context` tokens in KV (the one being
    decoded included)."""
    if batch <= 0:
        raise ConfigError("batch", f"must be > 0, got {batch}")
    if context <= 0:
        raise ConfigError("context", f"must be > 0, got {context}")
    return _cost(
        model,
        tokens=batch,
        token_context=batch * context,
        context=batch * context,
        logits=batch,
        sequences=batch,
        dtype=dtype,
        kv_dtype=kv_dtype,
    )
