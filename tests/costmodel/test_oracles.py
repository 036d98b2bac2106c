"""Hand-computed oracles for every term of the step cost model.

Every expected value below is written as explicit arithmetic from REFERENCE.md §2 and the
conventions of `gpumetrics/costmodel/step.py` (attention 4·Hq·d·L·Σn·c with no causal halving,
weights read once per step, KV of the whole context read, new KV written). Nothing here calls an
implementation helper to compute an expectation.
"""

from __future__ import annotations

import dataclasses

import pytest

from gpumetrics.costmodel import (
    PRESETS,
    ModelSpec,
    RequestWork,
    causal_pairs,
    decode_batch,
    dtype_bytes,
    expected_experts_touched,
    find_model,
    step_cost,
)
from gpumetrics.errors import ConfigError, UnknownModelError

# --------------------------------------------------------------------------------------------
# (a) A tiny dense config with small integers. Hq·d = 64 != D = 48 on purpose: a cost model that
# assumes Hq·d == D (as LLM-Viewer does) would get the projections wrong here.
#   L=3, D=48, Hq=4, Hkv=2, d=16, I=80, V=100
TINY = ModelSpec(
    name="oracle-tiny",
    layers=3,
    hidden=48,
    heads=4,
    kv_heads=2,
    head_dim=16,
    intermediate=80,
    vocab=100,
)

# The mixed step:
#   A  prefill of 10 tokens, no prefix hit:        n=10, c=10, samples
#   B  prefill of 12 tokens, the first 4 cached:   n=8,  c=12, samples
#   C  decode, KV will hold 7 tokens:              n=1,  c=7,  samples
#   D  decode, KV will hold 20 tokens:             n=1,  c=20, samples
#   E  chunked prefill: 6 prompt tokens, 15 in KV: n=6,  c=15, does not sample
MIXED = (
    RequestWork.prefill(10),
    RequestWork.prefill(12, cached=4),
    RequestWork.decode(7),
    RequestWork.decode(20),
    RequestWork(new_tokens=6, context=15, samples=False),
)
MIXED_T = 10 + 8 + 1 + 1 + 6  # 26 tokens
MIXED_TC = 10 * 10 + 8 * 12 + 1 * 7 + 1 * 20 + 6 * 15  # 313
MIXED_C = 10 + 12 + 7 + 20 + 15  # 64
MIXED_LOGITS = 4  # E does not sample


def test_request_work_constructors() -> None:
    assert RequestWork.prefill(10) == RequestWork(new_tokens=10, context=10, samples=True)
    assert RequestWork.prefill(12, cached=4) == RequestWork(new_tokens=8, context=12, samples=True)
    assert RequestWork.decode(7) == RequestWork(new_tokens=1, context=7, samples=True)


def test_tiny_mixed_step_every_term() -> None:
    cost = step_cost(TINY, MIXED)
    # FLOPs
    assert cost.qkv_flops == 2 * 26 * 48 * (4 + 2 * 2) * 16 * 3
    assert cost.qkv_flops == 958_464
    assert cost.o_proj_flops == 2 * 26 * 4 * 16 * 48 * 3
    assert cost.o_proj_flops == 479_232
    assert cost.attention_flops == 4 * 4 * 16 * 3 * 313
    assert cost.attention_flops == 240_384
    assert cost.ffn_flops == 2 * 26 * 48 * 3 * 80 * 3
    assert cost.ffn_flops == 1_797_120
    assert cost.router_flops == 0
    assert cost.lm_head_flops == 2 * 4 * 48 * 100
    assert cost.lm_head_flops == 38_400
    total_flops = 958_464 + 479_232 + 240_384 + 1_797_120 + 0 + 38_400
    assert cost.flops == total_flops
    # Bytes (bf16 weights and KV: 2 bytes each)
    weights = (3 * (48 * (4 + 2 * 2) * 16 + 4 * 16 * 48 + 3 * 48 * 80) + 48 * 100) * 2
    assert weights == 134_016
    assert cost.weight_bytes == weights
    kv_read = 2 * 2 * 16 * 2 * 3 * 64
    assert kv_read == 24_576
    assert cost.kv_read_bytes == kv_read
    kv_write = 2 * 26 * 2 * 16 * 2 * 3
    assert kv_write == 9_984
    assert cost.kv_write_bytes == kv_write
    assert cost.read_bytes == weights + kv_read
    assert cost.bytes == weights + kv_read + kv_write
    assert cost.arithmetic_intensity == pytest.approx(total_flops / (weights + kv_read + kv_write))
    assert cost.tokens == 26
    assert cost.sequences == 5


def test_tiny_mixed_step_matches_totals_formula() -> None:
    """The same step, written over the totals T, TC, C, N_logits."""
    cost = step_cost(TINY, MIXED)
    assert cost.qkv_flops == 2 * MIXED_T * 48 * (4 + 4) * 16 * 3
    assert cost.attention_flops == 4 * 4 * 16 * 3 * MIXED_TC
    assert cost.lm_head_flops == 2 * MIXED_LOGITS * 48 * 100
    assert cost.kv_read_bytes == 2 * 2 * 16 * 2 * 3 * MIXED_C
    assert cost.kv_write_bytes == 2 * MIXED_T * 2 * 16 * 2 * 3


# Each request of the mixed step on its own: (request, n, c, samples).
SINGLE = [
    pytest.param(RequestWork.prefill(10), 10, 10, 1, id="prefill-no-hit"),
    pytest.param(RequestWork.prefill(12, cached=4), 8, 12, 1, id="prefill-prefix-hit"),
    pytest.param(RequestWork.decode(7), 1, 7, 1, id="decode"),
    pytest.param(RequestWork(new_tokens=6, context=15, samples=False), 6, 15, 0, id="chunk"),
]


@pytest.mark.parametrize(("request_work", "n", "c", "logits"), SINGLE)
def test_tiny_single_request(request_work: RequestWork, n: int, c: int, logits: int) -> None:
    cost = step_cost(TINY, [request_work])
    assert cost.qkv_flops == 2 * n * 48 * 8 * 16 * 3
    assert cost.o_proj_flops == 2 * n * 64 * 48 * 3
    assert cost.attention_flops == 4 * 4 * 16 * 3 * n * c
    assert cost.ffn_flops == 2 * n * 48 * 240 * 3
    assert cost.router_flops == 0
    assert cost.lm_head_flops == 2 * logits * 48 * 100
    assert cost.weight_bytes == 134_016
    assert cost.kv_read_bytes == 2 * 2 * 16 * 2 * 3 * c
    assert cost.kv_write_bytes == 2 * n * 2 * 16 * 2 * 3
    assert cost.tokens == n
    assert cost.sequences == 1


def test_tiny_prefix_hit_numbers() -> None:
    """Prefill 12 with 4 cached vs prefill 12 uncached: 8·12 vs 12·12 attention pairs."""
    hit = step_cost(TINY, [RequestWork.prefill(12, cached=4)])
    miss = step_cost(TINY, [RequestWork.prefill(12)])
    assert miss.attention_flops - hit.attention_flops == 4 * 4 * 16 * 3 * (144 - 96)
    assert miss.ffn_flops - hit.ffn_flops == 2 * 4 * 48 * 240 * 3
    assert hit.kv_read_bytes == miss.kv_read_bytes  # the whole context is read either way
    assert miss.kv_write_bytes - hit.kv_write_bytes == 2 * 4 * 2 * 16 * 2 * 3


def test_tiny_dtypes_scale_bytes_not_flops() -> None:
    base = step_cost(TINY, MIXED)
    cost = step_cost(TINY, MIXED, dtype="fp8", kv_dtype="fp32")
    assert cost.flops == base.flops
    assert cost.weight_bytes == (3 * (48 * 8 * 16 + 64 * 48 + 3 * 48 * 80) + 48 * 100) * 1
    assert cost.kv_read_bytes == 2 * 2 * 16 * 4 * 3 * 64
    assert cost.kv_write_bytes == 2 * 26 * 2 * 16 * 4 * 3


def test_empty_step_is_refused() -> None:
    with pytest.raises(ConfigError, match="requests"):
        step_cost(TINY, [])


def test_tiny_decode_batch_equals_explicit_requests() -> None:
    cost = decode_batch(TINY, 5, 9)
    # T=5, TC=5·1·9=45, C=45, N_logits=5
    assert cost.qkv_flops == 2 * 5 * 48 * 8 * 16 * 3
    assert cost.o_proj_flops == 2 * 5 * 64 * 48 * 3
    assert cost.attention_flops == 4 * 4 * 16 * 3 * 45
    assert cost.ffn_flops == 2 * 5 * 48 * 240 * 3
    assert cost.lm_head_flops == 2 * 5 * 48 * 100
    assert cost.weight_bytes == 134_016
    assert cost.kv_read_bytes == 2 * 2 * 16 * 2 * 3 * 45
    assert cost.kv_write_bytes == 2 * 5 * 2 * 16 * 2 * 3
    assert cost.tokens == 5
    assert cost.sequences == 5
    assert cost == step_cost(TINY, [RequestWork.decode(9)] * 5)


def test_tiny_params() -> None:
    per_layer = 48 * 8 * 16 + 64 * 48 + 3 * 48 * 80 + 2 * 48  # projections + two RMSNorms
    assert TINY.attention_params_per_layer == 48 * 8 * 16 + 64 * 48
    assert TINY.expert_params == 3 * 48 * 80
    assert TINY.router_params_per_layer == 0
    assert TINY.total_params == 3 * per_layer + 2 * 100 * 48 + 48
    assert TINY.kv_bytes_per_token() == 2 * 3 * 2 * 16 * 2
    assert TINY.kv_bytes_per_token("fp8") == 2 * 3 * 2 * 16 * 1


# A tiny MoE: L=2, D=32, Hq=4, Hkv=1, d=8, I=40 (per expert), V=50, E=4 experts, k=2 active.
TINY_MOE = ModelSpec(
    name="oracle-moe",
    layers=2,
    hidden=32,
    heads=4,
    kv_heads=1,
    head_dim=8,
    intermediate=40,
    vocab=50,
    experts=4,
    active_experts=2,
)


def test_tiny_moe_decode_step() -> None:
    cost = decode_batch(TINY_MOE, 3, 5)  # T=3, TC=15, C=15, N_logits=3
    touched = 4 * (1 - (1 - 2 / 4) ** 3)
    assert touched == 3.5
    assert cost.qkv_flops == 2 * 3 * 32 * (4 + 2) * 8 * 2
    assert cost.o_proj_flops == 2 * 3 * 4 * 8 * 32 * 2
    assert cost.attention_flops == 4 * 4 * 8 * 2 * 15
    assert cost.ffn_flops == 2 * 3 * 32 * 3 * 40 * 2 * 2  # k=2 experts per token
    assert cost.router_flops == 2 * 3 * 32 * 4 * 2
    assert cost.lm_head_flops == 2 * 3 * 32 * 50
    weights = (2 * (32 * 6 * 8 + 4 * 8 * 32 + 3 * 32 * 40 * 3.5) + 2 * 32 * 4 + 32 * 50) * 2
    assert weights == 67_712
    assert cost.weight_bytes == pytest.approx(weights, rel=1e-12)
    assert cost.kv_read_bytes == 2 * 1 * 8 * 2 * 2 * 15
    assert cost.kv_write_bytes == 2 * 3 * 1 * 8 * 2 * 2


def test_tiny_moe_params() -> None:
    per_layer = 32 * 6 * 8 + 4 * 8 * 32 + 4 * 3 * 32 * 40 + 32 * 4 + 2 * 32
    assert TINY_MOE.is_moe
    assert not TINY.is_moe
    assert TINY_MOE.router_params_per_layer == 32 * 4
    assert TINY_MOE.total_params == 2 * per_layer + 2 * 50 * 32 + 32


# --------------------------------------------------------------------------------------------
# causal_pairs against brute force


def _brute_force_pairs(n: int, c: int) -> int:
    queries = range(c - n, c)  # positions of the new tokens
    return sum(1 for i in queries for j in range(c) if j <= i)


@pytest.mark.parametrize("c", range(1, 13))
def test_causal_pairs_brute_force(c: int) -> None:
    for n in range(1, c + 1):
        assert causal_pairs(n, c) == _brute_force_pairs(n, c), (n, c)


def test_causal_pairs_known_values() -> None:
    assert causal_pairs(1, 4096) == 4096  # decode attends to the whole context
    assert causal_pairs(10, 10) == 55  # full prefill: triangle
    assert causal_pairs(8, 12) == 8 * 4 + 8 * 9 // 2


def test_attention_flops_are_not_causally_halved() -> None:
    """The documented convention: n·c pairs, not the causal count."""
    cost = step_cost(TINY, [RequestWork.prefill(10)])
    assert cost.attention_flops == 4 * 4 * 16 * 3 * 10 * 10
    assert cost.attention_flops != 4 * 4 * 16 * 3 * causal_pairs(10, 10)


# --------------------------------------------------------------------------------------------
# (b) Llama-3-8B, from its published config.json (meta-llama/Meta-Llama-3-8B):
L8, D8, HQ8, HKV8, HD8, I8, V8 = 32, 4096, 32, 8, 128, 14336, 128256


def test_llama3_8b_preset_matches_published_config() -> None:
    m = PRESETS["llama-3-8b"]
    assert (m.layers, m.hidden, m.heads, m.kv_heads, m.head_dim, m.intermediate, m.vocab) == (
        L8,
        D8,
        HQ8,
        HKV8,
        HD8,
        I8,
        V8,
    )
    assert (m.experts, m.active_experts, m.tied_embeddings) == (1, 1, False)
    assert find_model("llama-3-8b") == m


def test_llama3_8b_param_count() -> None:
    attn = 4096 * (32 + 2 * 8) * 128 + 32 * 128 * 4096  # 41,943,040
    ffn = 3 * 4096 * 14336  # 176,160,768
    norms = 2 * 4096
    embed_and_head = 2 * 128256 * 4096  # untied
    expected = 32 * (attn + ffn + norms) + embed_and_head + 4096  # + final norm
    assert expected == 8_030_261_248
    m = PRESETS["llama-3-8b"]
    assert m.total_params == expected
    assert m.total_params == pytest.approx(8.03e9, rel=0.001)
    # Active = the weights a token multiplies with: the projections and the LM head (the input
    # embedding is a lookup, norms are elementwise). 2·active = the per-token matmul FLOPs.
    assert m.active_params_per_token == 32 * (attn + ffn) + 4096 * 128256
    assert m.active_params_per_token == 7_504_658_432
    assert m.weight_bytes() == expected * 2
    assert m.weight_bytes("fp8") == expected


def test_llama3_8b_kv_bytes_per_token() -> None:
    m = PRESETS["llama-3-8b"]
    assert 2 * 32 * 8 * 128 * 2 == 131072
    assert m.kv_bytes_per_token() == 131072  # 128 KiB
    assert m.kv_bytes_per_token("bf16") == 128 * 1024
    assert m.kv_bytes_per_token("fp8") == 65536


def test_llama3_8b_decode_batch1_context4096() -> None:
    cost = decode_batch(PRESETS["llama-3-8b"], 1, 4096)
    qkv = 2 * 1 * 4096 * (32 + 16) * 128 * 32
    o_proj = 2 * 1 * 32 * 128 * 4096 * 32
    attention = 4 * 32 * 128 * 32 * 4096
    ffn = 2 * 1 * 4096 * 3 * 14336 * 32
    lm_head = 2 * 1 * 4096 * 128256
    assert (qkv, o_proj, attention, ffn, lm_head) == (
        1_610_612_736,
        1_073_741_824,
        2_147_483_648,
        11_274_289_152,
        1_050_673_152,
    )
    assert cost.qkv_flops == qkv
    assert cost.o_proj_flops == o_proj
    assert cost.attention_flops == attention
    assert cost.ffn_flops == ffn
    assert cost.router_flops == 0
    assert cost.lm_head_flops == lm_head
    flops = qkv + o_proj + attention + ffn + lm_head
    assert flops == 17_156_800_512
    assert cost.flops == flops

    weights = (32 * (4096 * 48 * 128 + 4096 * 4096 + 3 * 4096 * 14336) + 4096 * 128256) * 2
    assert weights == 15_009_316_864
    kv_read = 2 * 8 * 128 * 2 * 32 * 4096
    assert kv_read == 536_870_912  # 4096 tokens x 128 KiB
    kv_write = 2 * 1 * 8 * 128 * 2 * 32
    assert kv_write == 131_072
    assert cost.weight_bytes == weights
    assert cost.kv_read_bytes == kv_read
    assert cost.kv_write_bytes == kv_write
    assert cost.read_bytes == weights + kv_read
    assert cost.bytes == weights + kv_read + kv_write
    assert cost.arithmetic_intensity == pytest.approx(flops / (weights + kv_read + kv_write))
    # About 1.1 FLOP per byte: batch-1 decode is deeply memory-bound.
    assert cost.arithmetic_intensity == pytest.approx(1.1045, abs=1e-3)
    assert cost.tokens == 1
    assert cost.sequences == 1


def test_llama3_8b_prefill_2048() -> None:
    cost = step_cost(PRESETS["llama-3-8b"], [RequestWork.prefill(2048)])
    assert cost.qkv_flops == 2 * 2048 * 4096 * 48 * 128 * 32
    assert cost.attention_flops == 4 * 32 * 128 * 32 * 2048 * 2048
    assert cost.ffn_flops == 2 * 2048 * 4096 * 3 * 14336 * 32
    assert cost.lm_head_flops == 2 * 1 * 4096 * 128256  # only the last token samples
    assert cost.kv_write_bytes == 2048 * 131072


# --------------------------------------------------------------------------------------------
# (c) Mixtral-8x7B (mistralai/Mixtral-8x7B-v0.1 config.json): L=32, D=4096, Hq=32, Hkv=8,
# d=128, I=14336 per expert, V=32000, E=8, k=2.


def test_mixtral_preset_matches_published_config() -> None:
    m = PRESETS["mixtral-8x7b"]
    assert (m.layers, m.hidden, m.heads, m.kv_heads, m.head_dim, m.intermediate, m.vocab) == (
        32,
        4096,
        32,
        8,
        128,
        14336,
        32000,
    )
    assert (m.experts, m.active_experts, m.tied_embeddings) == (8, 2, False)


def test_mixtral_param_counts() -> None:
    m = PRESETS["mixtral-8x7b"]
    attn = 4096 * 48 * 128 + 32 * 128 * 4096
    expert = 3 * 4096 * 14336
    router = 4096 * 8
    norms = 2 * 4096
    embed_and_head = 2 * 32000 * 4096
    total = 32 * (attn + 8 * expert + router + norms) + embed_and_head + 4096
    assert total == 46_702_792_704
    assert m.total_params == total
    assert m.total_params == pytest.approx(46.7e9, rel=0.002)
    assert m.expert_params == expert
    assert m.router_params_per_layer == router
    active_with_lookup = 32 * (attn + 2 * expert + router + norms) + embed_and_head + 4096
    assert active_with_lookup == 12_879_925_248  # the published "12.9B active"
    # The implementation's convention (as for dense models): matmul weights only, so the input
    # embedding and norms are left out; it is within 1.5 % of the published figure.
    active = 32 * (attn + 2 * expert + router) + 32000 * 4096
    assert active == 12_748_587_008
    assert m.active_params_per_token == active
    assert m.active_params_per_token == pytest.approx(12.9e9, rel=0.015)
    assert m.active_params_per_token < m.total_params


def test_expected_experts_touched() -> None:
    assert expected_experts_touched(8, 2, 1) == 2  # exactly k for one token
    assert expected_experts_touched(8, 2, 2) == pytest.approx(8 * (1 - 0.75**2))  # 3.5
    assert expected_experts_touched(8, 2, 2) == pytest.approx(3.5)
    assert expected_experts_touched(8, 2, 16) == pytest.approx(8 * (1 - 0.75**16))
    assert expected_experts_touched(8, 2, 256) == pytest.approx(8.0, rel=1e-12)
    assert expected_experts_touched(8, 2, 256) <= 8
    assert expected_experts_touched(4, 2, 3) == pytest.approx(3.5)
    assert expected_experts_touched(1, 1, 7) == 1  # dense: one "expert"
    previous = 0.0
    for tokens in range(1, 200):
        now = expected_experts_touched(8, 2, tokens)
        assert previous <= now <= 8
        previous = now


def _mixtral_weight_bytes(touched: float) -> float:
    attn = 4096 * 48 * 128 + 32 * 128 * 4096
    expert = 3 * 4096 * 14336
    return (32 * (attn + expert * touched) + 32 * 4096 * 8 + 4096 * 32000) * 2


def test_mixtral_decode_weight_bytes_t1_vs_large_batch() -> None:
    m = PRESETS["mixtral-8x7b"]
    one = decode_batch(m, 1, 1024)
    assert one.weight_bytes == pytest.approx(_mixtral_weight_bytes(2), rel=1e-12)
    assert one.weight_bytes == pytest.approx(25_497_174_016, rel=1e-12)
    big = decode_batch(m, 512, 1024)
    assert big.weight_bytes == pytest.approx(_mixtral_weight_bytes(8 * (1 - 0.75**512)))
    assert big.weight_bytes == pytest.approx(_mixtral_weight_bytes(8), rel=1e-12)
    mid = decode_batch(m, 4, 1024)
    assert mid.weight_bytes == pytest.approx(_mixtral_weight_bytes(8 * (1 - 0.75**4)), rel=1e-12)
    # All experts resident cost ~3.7x what a single token reads.
    assert big.weight_bytes / one.weight_bytes == pytest.approx(3.653, abs=1e-3)


def test_mixtral_decode_flops_batch1() -> None:
    cost = decode_batch(PRESETS["mixtral-8x7b"], 1, 1024)
    assert cost.qkv_flops == 2 * 4096 * 48 * 128 * 32
    assert cost.o_proj_flops == 2 * 32 * 128 * 4096 * 32
    assert cost.attention_flops == 4 * 32 * 128 * 32 * 1024
    assert cost.ffn_flops == 2 * 4096 * 3 * 14336 * 32 * 2
    assert cost.router_flops == 2 * 4096 * 8 * 32
    assert cost.lm_head_flops == 2 * 4096 * 32000
    assert cost.kv_read_bytes == 1024 * 131072
    assert cost.kv_write_bytes == 131072


@pytest.mark.parametrize("name", ["llama-3-8b", "llama-3-70b", "qwen2.5-7b", "mixtral-8x7b"])
def test_non_attention_flops_per_token_are_twice_active_params(name: str) -> None:
    m = PRESETS[name]
    cost = decode_batch(m, 1, 1)
    matmul = (
        cost.qkv_flops + cost.o_proj_flops + cost.ffn_flops + cost.router_flops + cost.lm_head_flops
    )
    assert matmul == 2 * m.active_params_per_token


# --------------------------------------------------------------------------------------------
# small API facts


def test_dtype_bytes() -> None:
    assert dtype_bytes("bf16") == 2
    assert dtype_bytes("fp16") == 2
    assert dtype_bytes("fp32") == 4
    assert dtype_bytes("fp8") == 1
    assert dtype_bytes("int8") == 1
    assert dtype_bytes("fp4") == 0.5
    with pytest.raises(ConfigError, match="bf16"):
        dtype_bytes("bf17")


def test_find_model_unknown() -> None:
    with pytest.raises(UnknownModelError, match="llama-3-8b"):
        find_model("no-such-model")


def test_a_step_is_the_sum_of_its_requests_with_weights_read_once() -> None:
    """Batching oracle: every FLOP term and the KV traffic of the mixed step are the sums over
    its five requests costed one at a time; the weights are read once per step, not per
    request; and a StepCost is frozen."""
    alone = [step_cost(TINY, [request]) for request in MIXED]
    together = step_cost(TINY, MIXED)
    for term in (
        "qkv_flops",
        "o_proj_flops",
        "attention_flops",
        "ffn_flops",
        "router_flops",
        "lm_head_flops",
        "kv_read_bytes",
        "kv_write_bytes",
        "tokens",
        "sequences",
    ):
        assert getattr(together, term) == sum(getattr(c, term) for c in alone), term
    assert together.weight_bytes == alone[0].weight_bytes == 134_016  # once, not 5 times
    assert together.bytes == sum(c.bytes for c in alone) - 4 * 134_016
    with pytest.raises(dataclasses.FrozenInstanceError):
        together.tokens = 0  # type: ignore[misc]
