"""A Llama-style decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU) over a paged cache.

Shapes come from a `costmodel.ModelSpec`; weights are seeded random (no downloads). Module and
parameter names are Hugging Face `LlamaForCausalLM`'s (`model.layers.0.self_attn.q_proj.weight`,
...), so `state_dict()` loads into a transformers model built from `hf_config_kwargs` — the
worker's correctness oracle. The forward pass takes a step's flat batch of new tokens, writes
their K/V into the cache, and returns logits only at the rows asked for (the last token of each
sequence that samples), so its matmuls are exactly those of `costmodel.step_cost`:
QKV, O, attention over n·c pairs, gate/up/down, and the LM head for N_logits rows.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from torch import Tensor, nn

from ..costmodel import ModelSpec
from .attention import AttentionFn, AttentionMetadata, PagedKV

__all__ = ["RMS_EPS", "ROPE_THETA", "CausalLM", "build_model", "hf_config_kwargs"]

ROPE_THETA = 500_000.0
"""RoPE base of every worker model (Llama 3's; plain RoPE, no long-context scaling)."""
RMS_EPS = 1e-5
"""RMSNorm epsilon (Llama 3's)."""
INIT_STD = 0.02
"""Standard deviation of the random weights (Hugging Face's `initializer_range`)."""


class RMSNorm(nn.Module):
    """x / rms(x) · weight, computed in float32 like Hugging Face's `LlamaRMSNorm`."""

    def __init__(self, dim: int, eps: float = RMS_EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def rope_tables(positions: Tensor, head_dim: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """cos and sin, [T, 1, d], for rotating q and k at `positions` (half-split layout)."""
    inv_freq = 1.0 / (
        ROPE_THETA
        ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim)
    )
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)[:, None, :]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    """GQA self-attention: projections here, the paged attention itself in `attention`."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        d, hq, hkv = spec.head_dim, spec.heads, spec.kv_heads
        self.heads, self.kv_heads, self.head_dim = hq, hkv, d
        self.scale = d**-0.5
        self.q_proj = nn.Linear(spec.hidden, hq * d, bias=False)
        self.k_proj = nn.Linear(spec.hidden, hkv * d, bias=False)
        self.v_proj = nn.Linear(spec.hidden, hkv * d, bias=False)
        self.o_proj = nn.Linear(hq * d, spec.hidden, bias=False)

    def forward(
        self,
        x: Tensor,
        rope: tuple[Tensor, Tensor],
        k_cache: Tensor,
        v_cache: Tensor,
        meta: AttentionMetadata,
        attend: AttentionFn,
    ) -> Tensor:
        t = x.shape[0]
        q = F.linear(x, self.q_proj.weight).view(t, self.heads, self.head_dim)
        k = F.linear(x, self.k_proj.weight).view(t, self.kv_heads, self.head_dim)
        v = F.linear(x, self.v_proj.weight).view(t, self.kv_heads, self.head_dim)
        q, k = _rotate(q, *rope), _rotate(k, *rope)
        k_cache.view(-1, self.kv_heads, self.head_dim)[meta.slot_mapping] = k
        v_cache.view(-1, self.kv_heads, self.head_dim)[meta.slot_mapping] = v
        return F.linear(attend(q, k_cache, v_cache, meta, self.scale), self.o_proj.weight)


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) · up(x))."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(spec.hidden, spec.intermediate, bias=False)
        self.up_proj = nn.Linear(spec.hidden, spec.intermediate, bias=False)
        self.down_proj = nn.Linear(spec.intermediate, spec.hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate = F.silu(F.linear(x, self.gate_proj.weight))
        return F.linear(gate * F.linear(x, self.up_proj.weight), self.down_proj.weight)


class DecoderLayer(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(spec.hidden)
        self.self_attn = Attention(spec)
        self.post_attention_layernorm = RMSNorm(spec.hidden)
        self.mlp = MLP(spec)


class Decoder(nn.Module):
    """Embeddings, the layers and the final norm (Hugging Face's `LlamaModel` names)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(spec.vocab, spec.hidden)
        self.layers = nn.ModuleList(DecoderLayer(spec) for _ in range(spec.layers))
        self.norm = RMSNorm(spec.hidden)


class CausalLM(nn.Module):
    """The decoder and its LM head; `forward` runs one engine step over the paged cache."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.model = Decoder(spec)
        self.lm_head = nn.Linear(spec.hidden, spec.vocab, bias=False)
        if spec.tied_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(
        self,
        input_ids: Tensor,
        positions: Tensor,
        kv: PagedKV,
        meta: AttentionMetadata,
        attend: AttentionFn,
        logits_rows: Tensor,
    ) -> Tensor:
        """Logits [len(logits_rows), V] (float32) for a step's new tokens [T] at
        `positions` [T]; their K/V are written into `kv` at `meta.slot_mapping`."""
        x = F.embedding(input_ids, self.model.embed_tokens.weight)
        rope = rope_tables(positions, self.spec.head_dim, x.dtype)
        for i, module in enumerate(self.model.layers):
            layer: DecoderLayer = module  # type: ignore[assignment]
            h = layer.input_layernorm(x)
            x = x + layer.self_attn(h, rope, kv.k[i], kv.v[i], meta, attend)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        x = self.model.norm(x[logits_rows])
        return F.linear(x, self.lm_head.weight).float()


def build_model(
    spec: ModelSpec, *, seed: int, device: torch.device, dtype: torch.dtype
) -> CausalLM:
    """A model of `spec`'s shape with seeded weights: every matrix ~ N(0, 0.02²), norms 1.

    Built on the meta device and initialised in place on `device` (no default init pass),
    so the 1B preset starts in seconds. The same seed gives the same weights on the same
    device type.
    """
    if spec.is_moe:
        raise ValueError(
            f"{spec.name} is a mixture-of-experts model; the reference worker runs dense "
            "decoders only"
        )
    with torch.device("meta"):
        model = CausalLM(spec)
    model = model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():  # tied weights are listed once
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            else:
                param.normal_(0.0, INIT_STD, generator=generator)
    if spec.tied_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.to(dtype=dtype).eval()


def hf_config_kwargs(spec: ModelSpec) -> dict[str, Any]:
    """`transformers.LlamaConfig` keyword arguments for the same architecture."""
    return {
        "vocab_size": spec.vocab,
        "hidden_size": spec.hidden,
        "intermediate_size": spec.intermediate,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "head_dim": spec.head_dim,
        "max_position_embeddings": spec.max_context,
        "rms_norm_eps": RMS_EPS,
        "rope_theta": ROPE_THETA,
        "rope_parameters": {"rope_type": "default", "rope_theta": ROPE_THETA},
        "tie_word_embeddings": spec.tied_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "hidden_act": "silu",
    }
