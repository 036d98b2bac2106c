"""Triton kernels of the fast decode step: fused RMSNorm, rotary + KV write, paged attention.

Each kernel computes what its torch-native twin in `paged_decode` computes (the oracle, and
the path CPU runs), in one launch instead of several, and the attention reads K/V in place
through the block table instead of gathering every block into a padded copy:

* `rms_norm`: optional residual add, then x / rms(x) · weight, one program per row; the bf16
  roundings of the reference (`x + a`, the normalised row, the weight product) are repeated.
* `rope_write`: one program per token rotates its q and k heads (half-split RoPE with the
  precomputed cos/sin rows at its position) and writes k and v into the caches at its slot.
* `paged_attention`: one program per (sequence, KV head, split); all query heads of the KV
  group in one tile (GQA); online softmax in fp32 over `BLOCK_N`-token tiles whose slots come
  from the block table. A sequence's context is cut into `splits` equal chunks (a static
  count, so a CUDA graph can hold it; chunks past the context exit at once) and a second
  kernel merges the chunks by their log-sum-exp (flash decoding). With one split the first
  kernel writes the output directly.
* `silu_mul`: silu(gate) · up from the fused gate/up projection.

Triton comes with torch's CUDA wheels; without it (`AVAILABLE` False) nothing here can run
and the fast decode path stays off. With `TRITON_INTERPRET=1` set before import the same
kernels run on CPU tensors (the tests use that when triton is installed).
"""

# ruff: noqa: N803 - Triton's convention: compile-time (constexpr) arguments are upper case

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

__all__ = ["AVAILABLE", "TritonDecodeOps", "splits_for"]

# Kernel parameter annotations: Triton's compiler looks every annotation name up and accepts
# only triton.language objects, so pointers and run-time scalars are annotated `Arg`
# (tl.tensor at run time), compile-time ones `constexpr`.
if TYPE_CHECKING:
    constexpr = int  # triton.language.constexpr at run time
    Arg = Any  # triton.language.tensor at run time
    triton: Any
    tl: Any
else:
    try:
        triton = importlib.import_module("triton")
        tl = importlib.import_module("triton.language")
        constexpr, Arg = tl.constexpr, tl.tensor
    except ImportError:
        triton = tl = None
        constexpr, Arg = int, Any

AVAILABLE = triton is not None
"""Whether triton imported (it ships with torch's CUDA builds)."""

BLOCK_N = 64
"""Tokens per attention tile (default)."""
MAX_SPLITS = 16
"""Most context splits per sequence (flash decoding)."""


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def splits_for(batch: int, kv_heads: int, programs: int) -> int:
    """Context splits per sequence: the power of two that makes batch · kv_heads · splits
    reach `programs` (a few per SM), at most MAX_SPLITS."""
    return min(MAX_SPLITS, _pow2(-(-programs // max(1, batch * kv_heads))))


def _rms_norm_kernel(
    x_ptr: Arg,
    res_ptr: Arg,
    w_ptr: Arg,
    out_ptr: Arg,
    res_out_ptr: Arg,
    hidden: Arg,
    eps: Arg,
    HAS_RES: constexpr,
    BLOCK: constexpr,
) -> None:
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < hidden
    x = tl.load(x_ptr + row * hidden + cols, mask=mask, other=0.0)
    dtype = x.dtype
    if HAS_RES:
        r = tl.load(res_ptr + row * hidden + cols, mask=mask, other=0.0)
        x = (x.to(tl.float32) + r.to(tl.float32)).to(dtype)
        tl.store(res_out_ptr + row * hidden + cols, x, mask=mask)
    xf = x.to(tl.float32)
    inv = tl.rsqrt(tl.sum(xf * xf, axis=0) / hidden + eps)
    y = (xf * inv).to(dtype).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * hidden + cols, (y * w).to(dtype), mask=mask)


def _rope_write_kernel(
    qkv_ptr: Arg,
    pos_ptr: Arg,
    slot_ptr: Arg,
    cos_ptr: Arg,
    sin_ptr: Arg,
    q_ptr: Arg,
    k_cache_ptr: Arg,
    v_cache_ptr: Arg,
    qkv_stride: Arg,
    HQ: constexpr,
    HKV: constexpr,
    D: constexpr,
    BLOCK_H: constexpr,
    BLOCK_KV: constexpr,
) -> None:
    t = tl.program_id(0)
    pos = tl.load(pos_ptr + t)
    slot = tl.load(slot_ptr + t)
    d = tl.arange(0, D)
    partner = (d + D // 2) % D
    sign = tl.where(d < D // 2, -1.0, 1.0)
    heads = tl.arange(0, BLOCK_H)  # q heads, then k heads
    live = heads < HQ + HKV
    row = qkv_ptr + t * qkv_stride + heads[:, None] * D
    x = tl.load(row + d[None, :], mask=live[:, None], other=0.0)
    dtype = x.dtype
    rot = tl.load(row + partner[None, :], mask=live[:, None], other=0.0).to(tl.float32)
    c = tl.load(cos_ptr + pos * D + d).to(tl.float32)
    s = tl.load(sin_ptr + pos * D + d).to(tl.float32)
    a = (x.to(tl.float32) * c[None, :]).to(dtype).to(tl.float32)
    b = (rot * sign[None, :] * s[None, :]).to(dtype).to(tl.float32)
    y = (a + b).to(dtype)
    is_q = heads < HQ
    tl.store(q_ptr + t * HQ * D + heads[:, None] * D + d[None, :], y, mask=is_q[:, None])
    k_row = k_cache_ptr + slot * HKV * D + (heads[:, None] - HQ) * D + d[None, :]
    tl.store(k_row, y, mask=(live & (heads >= HQ))[:, None])
    kv = tl.arange(0, BLOCK_KV)
    v = tl.load(
        qkv_ptr + t * qkv_stride + (HQ + HKV + kv[:, None]) * D + d[None, :],
        mask=(kv < HKV)[:, None],
        other=0.0,
    )
    tl.store(
        v_cache_ptr + slot * HKV * D + kv[:, None] * D + d[None, :], v, mask=(kv < HKV)[:, None]
    )


def _attention_kernel(
    q_ptr: Arg,
    k_cache_ptr: Arg,
    v_cache_ptr: Arg,
    table_ptr: Arg,
    ctx_ptr: Arg,
    out_ptr: Arg,
    part_o_ptr: Arg,
    part_lse_ptr: Arg,
    scale: Arg,
    table_stride_b: Arg,
    table_stride_w: Arg,
    HQ: constexpr,
    HKV: constexpr,
    D: constexpr,
    BS: constexpr,
    BLOCK_G: constexpr,
    BLOCK_N: constexpr,
    SPLITS: constexpr,
    IEEE: constexpr,
) -> None:
    b = tl.program_id(0)
    kvh = tl.program_id(1)
    split = tl.program_id(2)
    group = HQ // HKV
    g = tl.arange(0, BLOCK_G)
    d = tl.arange(0, D)
    g_live = g < group
    heads = kvh * group + g
    q = tl.load(q_ptr + (b * HQ + heads[:, None]) * D + d[None, :], mask=g_live[:, None], other=0.0)
    ctx = tl.load(ctx_ptr + b)
    tiles = tl.cdiv(ctx, BLOCK_N)
    per_split = tl.cdiv(tiles, SPLITS)
    first = split * per_split
    last = tl.minimum(first + per_split, tiles)
    m = tl.full([BLOCK_G], float("-inf"), tl.float32)
    denom = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, D], tl.float32)
    for tile in range(first, last):
        pos = tile * BLOCK_N + tl.arange(0, BLOCK_N)
        valid = pos < ctx
        block = tl.load(
            table_ptr + b * table_stride_b + (pos // BS) * table_stride_w, mask=valid, other=0
        )
        slot = block.to(tl.int64) * BS + pos % BS
        offs = (slot[:, None] * HKV + kvh) * D + d[None, :]
        k = tl.load(k_cache_ptr + offs, mask=valid[:, None], other=0.0)
        v = tl.load(v_cache_ptr + offs, mask=valid[:, None], other=0.0)
        if IEEE:  # noqa: SIM108 - a constexpr branch, resolved at compile time
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k))
        s = tl.where(valid[None, :], s * scale, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, axis=1))
        p = tl.exp(s - m_new[:, None])
        alpha = tl.exp(m - m_new)
        denom = denom * alpha + tl.sum(p, axis=1)
        if IEEE:  # noqa: SIM108 - a constexpr branch, resolved at compile time
            pv = tl.dot(p.to(v.dtype), v, input_precision="ieee")
        else:
            pv = tl.dot(p.to(v.dtype), v)
        acc = acc * alpha[:, None] + pv
        m = m_new
    if SPLITS == 1:
        o = acc / denom[:, None]
        out = out_ptr + (b * HQ + heads[:, None]) * D + d[None, :]
        tl.store(out, o.to(out_ptr.dtype.element_ty), mask=g_live[:, None])
    else:
        safe = tl.where(denom > 0, denom, 1.0)
        o = acc / safe[:, None]
        lse = tl.where(denom > 0, m + tl.log(safe), float("-inf"))
        row = (b * HQ + heads) * SPLITS + split
        tl.store(part_lse_ptr + row, lse, mask=g_live)
        tl.store(part_o_ptr + row[:, None] * D + d[None, :], o, mask=g_live[:, None])


def _merge_kernel(
    part_o_ptr: Arg,
    part_lse_ptr: Arg,
    out_ptr: Arg,
    D: constexpr,
    SPLITS: constexpr,
    BLOCK_S: constexpr,
) -> None:
    row = tl.program_id(0)  # b · HQ + head
    s = tl.arange(0, BLOCK_S)
    d = tl.arange(0, D)
    live = s < SPLITS
    lse = tl.load(part_lse_ptr + row * SPLITS + s, mask=live, other=float("-inf"))
    top = tl.max(lse, axis=0)
    w = tl.exp(lse - top)
    o = tl.load(
        part_o_ptr + (row * SPLITS + s[:, None]) * D + d[None, :], mask=live[:, None], other=0.0
    )
    merged = tl.sum(o * w[:, None], axis=0) / tl.sum(w, axis=0)
    tl.store(out_ptr + row * D + d, merged.to(out_ptr.dtype.element_ty))


def _silu_mul_kernel(gu_ptr: Arg, out_ptr: Arg, inter: Arg, BLOCK: constexpr) -> None:
    t = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < inter
    g = tl.load(gu_ptr + t * 2 * inter + cols, mask=mask, other=0.0)
    u = tl.load(gu_ptr + t * 2 * inter + inter + cols, mask=mask, other=0.0)
    dtype = g.dtype
    gf = g.to(tl.float32)
    a = (gf / (1.0 + tl.exp(-gf))).to(dtype).to(tl.float32)
    tl.store(out_ptr + t * inter + cols, (a * u.to(tl.float32)).to(dtype), mask=mask)


if AVAILABLE:
    _rms_norm = triton.jit(_rms_norm_kernel)
    _rope_write = triton.jit(_rope_write_kernel)
    _attention = triton.jit(_attention_kernel)
    _merge = triton.jit(_merge_kernel)
    _silu_mul = triton.jit(_silu_mul_kernel)


class TritonDecodeOps:
    """`paged_decode.DecodeOps` with the kernels above (CUDA, or CPU under the interpreter)."""

    name = "triton"

    def __init__(self, *, block_n: int = BLOCK_N, attention_warps: int = 4) -> None:
        """`block_n` tokens per attention tile (a power of two >= 16) and `attention_warps`
        warps per attention program: the attention kernel's two tuning knobs."""
        if not AVAILABLE:
            raise RuntimeError("triton is not installed (it ships with torch's CUDA wheels)")
        if block_n < 16 or block_n & (block_n - 1):
            raise ValueError(f"block_n must be a power of two >= 16, got {block_n}")
        self.block_n, self.attention_warps = block_n, attention_warps

    def rms_norm(
        self, x: Tensor, weight: Tensor, eps: float, residual: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        rows, hidden = x.shape
        out = torch.empty_like(x)
        res_out = torch.empty_like(x) if residual is not None else x
        _rms_norm[(rows,)](
            x, residual if residual is not None else x, weight, out, res_out, hidden, eps,
            HAS_RES=residual is not None, BLOCK=_pow2(hidden),
        )  # fmt: skip
        return out, res_out

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
        q = torch.empty(tokens, heads, head_dim, dtype=qkv.dtype, device=qkv.device)
        _rope_write[(tokens,)](
            qkv, positions, slots, cos, sin, q, k_cache, v_cache, qkv.stride(0),
            HQ=heads, HKV=kv_heads, D=head_dim, BLOCK_H=_pow2(heads + kv_heads),
            BLOCK_KV=_pow2(kv_heads),
        )  # fmt: skip
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
        kv_heads, block_size = k_cache.shape[2], k_cache.shape[1]
        out = torch.empty(batch, heads * head_dim, dtype=q.dtype, device=q.device)
        part_o = part_lse = out
        if splits > 1:
            part_o = torch.empty(
                batch, heads, splits, head_dim, dtype=torch.float32, device=q.device
            )
            part_lse = torch.empty(batch, heads, splits, dtype=torch.float32, device=q.device)
        _attention[(batch, kv_heads, splits)](
            q, k_cache, v_cache, block_table, context_lens, out, part_o, part_lse, scale,
            block_table.stride(0), block_table.stride(1),
            HQ=heads, HKV=kv_heads, D=head_dim, BS=block_size,
            BLOCK_G=max(16, _pow2(heads // kv_heads)), BLOCK_N=self.block_n, SPLITS=splits,
            IEEE=q.dtype == torch.float32, num_warps=self.attention_warps,
        )  # fmt: skip
        if splits > 1:
            _merge[(batch * heads,)](
                part_o, part_lse, out, D=head_dim, SPLITS=splits, BLOCK_S=_pow2(splits)
            )
        return out

    def silu_mul(self, gate_up: Tensor) -> Tensor:
        tokens, inter = gate_up.shape[0], gate_up.shape[1] // 2
        out = torch.empty(tokens, inter, dtype=gate_up.dtype, device=gate_up.device)
        block = min(1024, _pow2(inter))
        _silu_mul[(tokens, -(-inter // block))](gate_up, out, inter, BLOCK=block)
        return out
