"""The operations of a static-shape decode step, torch-native: the oracle and the CPU path.

A decode step has one new token per sequence, so every tensor's shape is fixed by the
(padded) batch size and the block table's width — nothing depends on the data, and the step
can be captured in a CUDA graph. `DecodeOps` names the five operations the step needs beyond
plain matmuls; `TorchDecodeOps` implements them with torch ops (graph-safe: no host syncs,
no data-dependent shapes) and is the reference that `triton_ops.TritonDecodeOps` is tested
against. Its attention gathers each sequence's whole block-table row (W · block_size keys)
and masks what lies past the context — simple and exact, but W-wide: the Triton kernel reads
only the context, in place.

Numerics follow `llama` (the reference path) operation by operation: RMSNorm in fp32 with the
normalised row rounded to the model dtype before the weight product, RoPE products rounded
separately (`x·cos + rot(x)·sin` in the model dtype), attention scores in the model dtype,
softmax in fp32, silu then the product in the model dtype.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from torch import Tensor

__all__ = ["DecodeOps", "TorchDecodeOps", "rope_cache"]


class DecodeOps(Protocol):
    """The fused operations of a decode step (torch-native or Triton)."""

    name: str

    def rms_norm(
        self, x: Tensor, weight: Tensor, eps: float, residual: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(norm(x + residual) · weight, x + residual) for x [T, H]; without `residual`
        the second item is x itself."""
        ...

    def rope_write(
        self,
        qkv: Tensor,
        positions: Tensor,
        slots: Tensor,
        cos: Tensor,
        sin: Tensor,
        k_cache: Tensor,
        v_cache: Tensor,
        heads: int,
    ) -> Tensor:
        """Rotate q and k of the fused projection qkv [T, (Hq + 2·Hkv)·d] at `positions`
        [T] with the tables cos/sin [max positions, d]; write k and v into the caches
        [blocks, block_size, Hkv, d] at `slots` [T]; return q [T, Hq, d]."""
        ...

    def attention(
        self,
        q: Tensor,
        k_cache: Tensor,
        v_cache: Tensor,
        block_table: Tensor,
        context_lens: Tensor,
        scale: float,
        splits: int,
    ) -> Tensor:
        """Decode attention [B, Hq·d] of q [B, Hq, d] over each sequence's first
        context_lens[b] cached tokens, found through block_table [B, W] (any strides);
        `splits` is a hint for kernels that cut the context (flash decoding)."""
        ...

    def silu_mul(self, gate_up: Tensor) -> Tensor:
        """silu(gate) · up for the fused projection [T, 2·I] -> [T, I]."""
        ...


def rope_cache(
    positions: int, head_dim: int, theta: float, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor]:
    """cos and sin [positions, head_dim] in `dtype`, computed like `llama.rope_tables`
    (fp32 angles, then rounded), so indexing them by position gives the same values."""
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    )
    freqs = torch.arange(positions, dtype=torch.float32, device=device)[:, None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype).contiguous(), emb.sin().to(dtype).contiguous()


class TorchDecodeOps:
    """`DecodeOps` with torch ops only: runs anywhere, captures in a CUDA graph."""

    name = "torch"

    def rms_norm(
        self, x: Tensor, weight: Tensor, eps: float, residual: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        if residual is not None:
            x = x + residual
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
        return weight * x32.to(x.dtype), x

    def rope_write(
        self,
        qkv: Tensor,
        positions: Tensor,
        slots: Tensor,
        cos: Tensor,
        sin: Tensor,
        k_cache: Tensor,
        v_cache: Tensor,
        heads: int,
    ) -> Tensor:
        tokens = qkv.shape[0]
        kv_heads, head_dim = k_cache.shape[2], k_cache.shape[3]
        q_end, k_end = heads * head_dim, (heads + kv_heads) * head_dim
        q, k, v = qkv[:, :q_end], qkv[:, q_end:k_end], qkv[:, k_end:]
        c, s = cos[positions][:, None, :], sin[positions][:, None, :]
        q = _rotate(q.reshape(tokens, heads, head_dim), c, s)
        k = _rotate(k.reshape(tokens, kv_heads, head_dim), c, s)
        k_cache.view(-1, kv_heads, head_dim).index_copy_(0, slots, k)
        v_cache.view(-1, kv_heads, head_dim).index_copy_(0, slots, v.view(tokens, kv_heads, -1))
        return q

    def attention(
        self,
        q: Tensor,
        k_cache: Tensor,
        v_cache: Tensor,
        block_table: Tensor,
        context_lens: Tensor,
        scale: float,
        splits: int,
    ) -> Tensor:
        batch, heads, head_dim = q.shape
        kv_heads = k_cache.shape[2]
        group = heads // kv_heads
        k = k_cache[block_table].flatten(1, 2)  # [B, W · block_size, Hkv, d]
        v = v_cache[block_table].flatten(1, 2)
        qg = q.view(batch, kv_heads, group, head_dim)
        scores = torch.einsum("bhgd,bshd->bhgs", qg, k) * scale
        keys = torch.arange(k.shape[1], device=q.device)
        valid = keys[None, :] < context_lens[:, None]  # [B, S]
        scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.einsum("bhgs,bshd->bhgd", probs, v)
        return out.reshape(batch, heads * head_dim)

    def silu_mul(self, gate_up: Tensor) -> Tensor:
        gate, up = gate_up.chunk(2, dim=-1)
        return F.silu(gate) * up


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin
