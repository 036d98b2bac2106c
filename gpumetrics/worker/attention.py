"""Attention over the paged KV cache, and the cache tensors themselves.

Two interchangeable paths compute the same thing for a step's flat batch of new tokens:

* `eager` (portable, any device): per sequence, gather its blocks' K/V, compute the full
  n × c score matrix with matmuls, mask causally, softmax, multiply by V. It computes every one
  of the n·c query-key pairs — exactly the cost model's attention convention (no causal
  halving), so `torch.utils.flop_counter.FlopCounterMode` counts what `costmodel.step_cost`
  predicts.
* `sdpa` (batched; the default): gather every sequence's K/V into one padded tensor and call
  `torch.nn.functional.scaled_dot_product_attention` once per layer with a boolean mask,
  letting torch pick its fused kernel (flash / memory-efficient on CUDA). Padding to the
  longest context costs work the cost model does not count; on CPU torch's fused kernel has
  no FLOP formula in FlopCounterMode, so the FLOP oracle uses the eager path. It is also the
  faster path on CPU (benchmarks/bench_worker.py: ~2x the eager path at batch 16). If it
  fails on the first step, the engine falls back to eager and records that.

GQA: query head h reads KV head h // (Hq / Hkv), as in Hugging Face's `repeat_kv`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from torch import Tensor

__all__ = [
    "ATTENTION_PATHS",
    "AttentionFn",
    "AttentionMetadata",
    "PagedKV",
    "build_metadata",
    "eager_attention",
    "resolve_path",
    "sdpa_attention",
]

#: Selectable attention paths ("auto": sdpa, with eager as the fallback).
ATTENTION_PATHS = ("auto", "eager", "sdpa")

_TORCH = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
_SDPA_GQA = _TORCH >= (2, 5)  # `enable_gqa=` appeared in torch 2.5


@dataclass(frozen=True, slots=True)
class PagedKV:
    """K and V caches, one pair of [num_blocks (+ 1 scratch), block_size, Hkv, d] tensors
    per layer."""

    k: tuple[Tensor, ...]
    v: tuple[Tensor, ...]
    block_size: int
    scratch_block: int | None = None
    """A block no sequence owns (`allocate` adds it after the `num_blocks` usable ones):
    static-shape decode batches write and read their padding rows there."""

    @classmethod
    def allocate(
        cls,
        layers: int,
        num_blocks: int,
        block_size: int,
        kv_heads: int,
        head_dim: int,
        *,
        dtype: torch.dtype,
        device: torch.device,
    ) -> PagedKV:
        shape = (num_blocks + 1, block_size, kv_heads, head_dim)
        k = tuple(torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers))
        v = tuple(torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers))
        return cls(k, v, block_size, scratch_block=num_blocks)


@dataclass(frozen=True, slots=True)
class AttentionMetadata:
    """Where a step's new tokens go in the cache and what each sequence attends to.

    Sequence b owns flat tokens [query_start[b], query_start[b+1]) — its n_b new tokens at
    positions c_b − n_b … c_b − 1 — and attends to its first c_b = context_lens[b] cached
    tokens (the new ones included, written before attention runs).
    """

    slot_mapping: Tensor
    """[T] cache slot (block · block_size + offset) of each new token."""
    query_start: tuple[int, ...]
    context_lens: tuple[int, ...]
    block_tables: Tensor
    """[B, max blocks] block ids (padding: 0, masked by context length)."""
    causal: tuple[Tensor | None, ...]
    """Eager path: per sequence an [n, c] bool mask of allowed keys (None when n == 1);
    empty when built for the batched path."""
    batched: bool = False
    """Built for the sdpa path (the three fields below)."""
    query_index: Tensor | None = None
    """Batched path: [B, max n] flat token index of each padded query row (padding: 0);
    None when every sequence has one new token (the flat batch is already [B, ...])."""
    query_rows: Tensor | None = None
    """Batched path: [T] the real rows of the flattened [B · max n] output (None as above)."""
    key_mask: Tensor | None = None
    """Batched path: [B, 1, max n, max blocks · block_size] bool mask of allowed keys."""


def build_metadata(
    spans: Sequence[tuple[int, int, Sequence[int]]],
    block_size: int,
    device: torch.device,
    *,
    batched: bool,
) -> AttentionMetadata:
    """Metadata for sequences given as (tokens already cached, new tokens, block table):
    the eager path's per-sequence masks, or (`batched`) the sdpa path's padded index and mask."""
    slots: list[int] = []
    starts, contexts, causal = [0], [], []
    for cached, new, table in spans:
        ctx = cached + new
        slots += [table[p // block_size] * block_size + p % block_size for p in range(cached, ctx)]
        starts.append(starts[-1] + new)
        contexts.append(ctx)
        if not batched:
            causal.append(
                None
                if new == 1
                else torch.ones(new, ctx, dtype=torch.bool, device=device).tril(diagonal=cached)
            )
    used = [-(-c // block_size) for c in contexts]
    width = max(used)
    tables = torch.tensor(
        [[*s[2][:u], *[0] * (width - u)] for s, u in zip(spans, used, strict=True)],
        dtype=torch.long,
    )
    meta = AttentionMetadata(
        slot_mapping=torch.tensor(slots, dtype=torch.long, device=device),
        query_start=tuple(starts),
        context_lens=tuple(contexts),
        block_tables=tables.to(device),
        causal=tuple(causal),
    )
    if not batched:
        return meta
    news = torch.tensor([s[1] for s in spans], dtype=torch.long)
    ctxs = torch.tensor(contexts, dtype=torch.long)
    longest = int(news.max())
    rows = torch.arange(longest)
    valid = rows[None, :] < news[:, None]  # [B, max n]
    position = ctxs[:, None] - news[:, None] + rows[None, :]  # [B, max n]
    mask = torch.arange(width * block_size)[None, None, :] <= position[:, :, None]
    mask[:, :, 0] |= ~valid  # padding rows attend to key 0 (no all-masked row, no NaN)
    index = query_rows = None
    if longest > 1:
        index = torch.where(valid, torch.tensor(starts[:-1])[:, None] + rows[None, :], 0)
        index = index.to(device)
        query_rows = valid.flatten().nonzero().flatten().to(device)
    return AttentionMetadata(
        slot_mapping=meta.slot_mapping,
        query_start=meta.query_start,
        context_lens=meta.context_lens,
        block_tables=meta.block_tables,
        causal=meta.causal,
        batched=True,
        query_index=index,
        query_rows=query_rows,
        key_mask=mask[:, None].to(device),
    )


AttentionFn = Callable[[Tensor, Tensor, Tensor, AttentionMetadata, float], Tensor]
"""(q [T, Hq, d], k_cache, v_cache, metadata, scale) -> [T, Hq · d]."""


def eager_attention(
    q: Tensor, k_cache: Tensor, v_cache: Tensor, meta: AttentionMetadata, scale: float
) -> Tensor:
    """The portable path: per sequence, matmul attention over its gathered blocks."""
    if len(meta.causal) != len(meta.context_lens):
        raise ValueError("the eager path needs metadata built with batched=False")
    kv_heads, head_dim = k_cache.shape[2], k_cache.shape[3]
    group = q.shape[1] // kv_heads
    bs = k_cache.shape[1]
    out = []
    for b, ctx in enumerate(meta.context_lens):
        lo, hi = meta.query_start[b], meta.query_start[b + 1]
        n = hi - lo
        blocks = meta.block_tables[b, : -(-ctx // bs)]
        k = k_cache[blocks].flatten(0, 1)[:ctx]  # [c, Hkv, d]
        v = v_cache[blocks].flatten(0, 1)[:ctx]
        qg = q[lo:hi].view(n, kv_heads, group, head_dim).permute(1, 2, 0, 3)  # [Hkv, G, n, d]
        scores = torch.matmul(qg.reshape(kv_heads, group * n, head_dim), k.permute(1, 2, 0))
        scores = scores.view(kv_heads, group, n, ctx) * scale
        mask = meta.causal[b]
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(probs.view(kv_heads, group * n, ctx), v.permute(1, 0, 2))
        out.append(o.view(kv_heads, group, n, head_dim).permute(2, 0, 1, 3).reshape(n, -1))
    return torch.cat(out) if len(out) > 1 else out[0]


def sdpa_attention(
    q: Tensor, k_cache: Tensor, v_cache: Tensor, meta: AttentionMetadata, scale: float
) -> Tensor:
    """The batched path: gather K/V into [B, Hkv, S, d], one fused SDPA call with a mask."""
    if not meta.batched or meta.key_mask is None:
        raise ValueError("the sdpa path needs metadata built with batched=True")
    batch = meta.block_tables.shape[0]
    kv_heads, head_dim = k_cache.shape[2], k_cache.shape[3]
    blocks = meta.block_tables.flatten()
    k = k_cache.index_select(0, blocks).view(batch, -1, kv_heads, head_dim).transpose(1, 2)
    v = v_cache.index_select(0, blocks).view(batch, -1, kv_heads, head_dim).transpose(1, 2)
    qp = (q[:, None] if meta.query_index is None else q[meta.query_index]).transpose(1, 2)
    if _SDPA_GQA:
        o = F.scaled_dot_product_attention(
            qp, k, v, attn_mask=meta.key_mask, scale=scale, enable_gqa=True
        )
    else:
        group = q.shape[1] // kv_heads
        o = F.scaled_dot_product_attention(
            qp,
            k.repeat_interleave(group, dim=1),
            v.repeat_interleave(group, dim=1),
            attn_mask=meta.key_mask,
            scale=scale,
        )
    o = o.transpose(1, 2).reshape(-1, q.shape[1] * head_dim)  # [B · max n, Hq · d]
    return o if meta.query_rows is None else o.index_select(0, meta.query_rows)


def resolve_path(requested: str) -> tuple[str, AttentionFn]:
    """The attention path to use: `auto` is the fused sdpa path (the faster one on CPU and
    CUDA alike); `eager` is the portable reference."""
    if requested not in ATTENTION_PATHS:
        raise ValueError(f"attention must be one of {ATTENTION_PATHS}, got {requested!r}")
    name = "sdpa" if requested == "auto" else requested
    return name, (sdpa_attention if name == "sdpa" else eager_attention)
