"""Paged attention == dense causal attention: GQA, several blocks, a partial last block,
prefill, chunked prefill over a cached prefix, and decode — on both paths."""

from __future__ import annotations

import pytest

torch = pytest.importorskip(
    "torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'"
)

from gpumetrics.worker.attention import (  # noqa: E402
    PagedKV,
    build_metadata,
    eager_attention,
    resolve_path,
    sdpa_attention,
)

BS, HQ, HKV, D = 4, 6, 2, 8
CPU = torch.device("cpu")
#: (tokens already cached, new tokens, block table): a prefill over 3 blocks with a partial
#: last one, a chunk after a cached prefix, a decode, a one-token prompt. Tables are shuffled.
MIXED = [(0, 11, [7, 2, 9]), (9, 5, [0, 5, 11, 3]), (6, 1, [4, 10]), (0, 1, [8])]
#: A decode-only batch (the batched path's no-padding shortcut): contexts 9, 4 and 1.
DECODES = [(8, 1, [3, 6, 1]), (3, 1, [11]), (0, 1, [2])]


def _dense(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Reference: float64 causal attention over a whole sequence, K/V repeated per group."""
    k = k.repeat_interleave(HQ // HKV, dim=1).double()
    v = v.repeat_interleave(HQ // HKV, dim=1).double()
    scores = torch.einsum("qhd,khd->hqk", q.double(), k) * D**-0.5
    c = q.shape[0]
    scores = scores.masked_fill(~torch.ones(c, c, dtype=torch.bool).tril(), float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v).reshape(c, HQ * D)


@pytest.mark.parametrize("spans", [MIXED, DECODES], ids=["mixed", "decodes"])
@pytest.mark.parametrize("path", ["eager", "sdpa"])
def test_paged_attention_equals_dense_attention(
    path: str, spans: list[tuple[int, int, list[int]]]
) -> None:
    gen = torch.Generator().manual_seed(0)
    kv = PagedKV.allocate(1, 12, BS, HKV, D, dtype=torch.float32, device=CPU)
    k_cache, v_cache = kv.k[0], kv.v[0]
    queries, expected = [], []
    for cached, new, table in spans:
        ctx = cached + new
        q = torch.randn(ctx, HQ, D, generator=gen)
        k = torch.randn(ctx, HKV, D, generator=gen)
        v = torch.randn(ctx, HKV, D, generator=gen)
        for p in range(cached):  # the cached prefix is already in its blocks
            k_cache[table[p // BS], p % BS], v_cache[table[p // BS], p % BS] = k[p], v[p]
        queries.append((q[cached:], k[cached:], v[cached:]))
        expected.append(_dense(q, k, v)[cached:])
    meta = build_metadata(spans, BS, CPU, batched=path == "sdpa")
    q = torch.cat([x[0] for x in queries])
    # the step writes the new tokens' K/V at slot_mapping, as the model does
    k_cache.view(-1, HKV, D)[meta.slot_mapping] = torch.cat([x[1] for x in queries])
    v_cache.view(-1, HKV, D)[meta.slot_mapping] = torch.cat([x[2] for x in queries])
    name, attend = resolve_path(path)
    assert name == path
    out = attend(q, k_cache, v_cache, meta, D**-0.5)
    assert out.shape == (sum(s[1] for s in spans), HQ * D)
    torch.testing.assert_close(out.double(), torch.cat(expected), atol=1e-5, rtol=1e-5)


def test_slot_mapping_follows_the_block_table() -> None:
    meta = build_metadata([(2, 3, [5, 1])], BS, CPU, batched=False)
    # positions 2, 3 in block 5; position 4 in block 1
    assert meta.slot_mapping.tolist() == [5 * BS + 2, 5 * BS + 3, 1 * BS + 0]
    assert meta.context_lens == (5,)
    assert meta.query_start == (0, 3)


def test_each_path_rejects_the_other_paths_metadata() -> None:
    q = torch.zeros(1, HQ, D)
    cache = torch.zeros(2, BS, HKV, D)
    with pytest.raises(ValueError, match="batched=True"):
        sdpa_attention(q, cache, cache, build_metadata([(0, 1, [0])], BS, CPU, batched=False), 1.0)
    with pytest.raises(ValueError, match="batched=False"):
        eager_attention(q, cache, cache, build_metadata([(0, 1, [0])], BS, CPU, batched=True), 1.0)


def test_auto_is_sdpa_and_unknown_paths_are_refused() -> None:
    assert resolve_path("auto")[0] == "sdpa"
    with pytest.raises(ValueError, match="attention must be one of"):
        resolve_path("flash")
