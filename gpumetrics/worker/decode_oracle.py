"""Oracles for the fast decode path: the reference path's logits for the same step, and
fp32 logits from a fresh prefill (what bf16 errors are measured against).

Used by the tests and `scripts/gpu_fast_decode_check.py`; nothing here is on the engine's
hot path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .attention import AttentionFn, PagedKV, build_metadata, sdpa_attention
from .llama import CausalLM
from .scheduler import SchedulerOutput

__all__ = ["prefill_logits", "reference_decode_logits"]


def reference_decode_logits(
    model: CausalLM,
    kv: PagedKV,
    out: SchedulerOutput,
    device: torch.device,
    attend: AttentionFn = sdpa_attention,
) -> Tensor:
    """The reference path's logits [B, V] (float32) for an all-decode step, exactly as the
    engine computes them; their K/V are written into `kv` (as the step itself would)."""
    entries = out.entries
    ids = [e.seq.tokens[e.start] for e in entries]
    positions = [e.start for e in entries]
    spans = [(e.start, e.new_tokens, e.seq.block_table) for e in entries]
    meta = build_metadata(spans, kv.block_size, device, batched=attend is sdpa_attention)
    with torch.inference_mode():
        logits: Tensor = model(
            torch.tensor(ids, dtype=torch.long, device=device),
            torch.tensor(positions, dtype=torch.long, device=device),
            kv,
            meta,
            attend,
            torch.arange(len(entries), device=device),
        )
    return logits


def prefill_logits(
    model: CausalLM, sequences: Sequence[Sequence[int]], device: torch.device, block_size: int = 16
) -> Tensor:
    """Logits [len(sequences), V] (float32) at the last token of each sequence, from a prefill
    of all its tokens into a cache of its own (`model`'s dtype): with an fp32 copy of a bf16
    model, the truth a bf16 decode step is measured against."""
    spec = model.spec
    dtype = model.lm_head.weight.dtype
    rows = []
    for tokens in sequences:
        blocks = -(-len(tokens) // block_size)
        kv = PagedKV.allocate(spec.layers, blocks, block_size, spec.kv_heads, spec.head_dim,
                              dtype=dtype, device=device)  # fmt: skip
        meta = build_metadata([(0, len(tokens), list(range(blocks)))], block_size, device,
                              batched=True)  # fmt: skip
        with torch.inference_mode():
            rows.append(
                model(
                    torch.tensor(list(tokens), dtype=torch.long, device=device),
                    torch.arange(len(tokens), device=device),
                    kv,
                    meta,
                    sdpa_attention,
                    torch.tensor([len(tokens) - 1], device=device),
                )
            )
    return torch.cat(rows)
