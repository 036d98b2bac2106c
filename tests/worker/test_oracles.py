"""Correctness oracles for the worker's model (fp32 on CPU, the `tiny` preset).

1. Logits equal Hugging Face `LlamaForCausalLM` built from the same config with the same
   weights (the worker's state dict, loaded by parameter name — no renaming). Tolerance:
   max |Δlogit| <= 1e-5 with logits of std ~0.2, i.e. float32 round-off only: the eager path
   performs HF's eager operations in the same order (observed Δ = 0), the sdpa path and the
   paged decode reorder a few float32 sums (observed Δ < 1e-6). Any real mismatch — RoPE
   layout or base, norm epsilon, GQA head grouping, a wrong cache slot — moves logits by
   ~1e-2 or more.
2. FLOPs of a forward pass equal the cost model's `step_cost(...).flops` **exactly** as
   counted by `torch.utils.flop_counter.FlopCounterMode`, for a mixed batch. Both count the
   same matmuls: QKV, O, QKᵀ and P·V over all n·c query-key pairs (the eager path computes the
   full masked score matrix, which is the cost model's no-causal-halving convention), gate/up/
   down, and the LM head only for the rows that sample. Neither counts the elementwise work
   (RMSNorm, RoPE, softmax, SiLU, residual adds) or the embedding gather, so the residual is
   0 by construction; on real hardware those ops cost time, not counted FLOPs.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

torch = pytest.importorskip(
    "torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'"
)
transformers = pytest.importorskip("transformers", reason="the HF oracle needs transformers")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from gpumetrics.costmodel import PRESETS, RequestWork, causal_pairs, step_cost  # noqa: E402
from gpumetrics.worker import Engine, EngineConfig, build_model, hf_config_kwargs  # noqa: E402
from gpumetrics.worker.attention import PagedKV, build_metadata, resolve_path  # noqa: E402

SPEC = PRESETS["tiny"]
CPU = torch.device("cpu")
TOL = 1e-5


@pytest.fixture(scope="module")
def models() -> tuple[torch.nn.Module, torch.nn.Module]:
    ours = build_model(SPEC, seed=0, device=CPU, dtype=torch.float32)
    config = transformers.LlamaConfig(
        vocab_size=SPEC.vocab,
        hidden_size=SPEC.hidden,
        intermediate_size=SPEC.intermediate,
        num_hidden_layers=SPEC.layers,
        num_attention_heads=SPEC.heads,
        num_key_value_heads=SPEC.kv_heads,
        head_dim=SPEC.head_dim,
        max_position_embeddings=SPEC.max_context,
        rms_norm_eps=1e-5,  # Llama 3's, as the worker documents
        rope_parameters={"rope_type": "default", "rope_theta": 500_000.0},
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    helper = transformers.LlamaConfig(**hf_config_kwargs(SPEC))  # what the benchmark uses
    for key in ("num_key_value_heads", "head_dim", "rms_norm_eps", "rope_parameters"):
        assert getattr(helper, key) == getattr(config, key)
    hf = transformers.LlamaForCausalLM(config).eval()
    result = hf.load_state_dict(ours.state_dict(), strict=True)
    assert not result.missing_keys
    assert not result.unexpected_keys
    return ours, hf


def _prompt(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("path", ["eager", "sdpa"])
def test_prefill_logits_equal_hugging_face(models: tuple, path: str) -> None:
    ours, hf = models
    ids = _prompt(45)
    with torch.no_grad():
        ref = hf(ids[None]).logits[0]
    assert ref.std() > 0.1  # the weights make a real signal, not ~0 logits
    kv = PagedKV.allocate(
        SPEC.layers, 8, 16, SPEC.kv_heads, SPEC.head_dim, dtype=torch.float32, device=CPU
    )
    meta = build_metadata([(0, 45, [5, 2, 7])], 16, CPU, batched=path == "sdpa")
    with torch.no_grad():
        out = ours(ids, torch.arange(45), kv, meta, resolve_path(path)[1], torch.arange(45))
    assert (out - ref).abs().max().item() <= TOL


@pytest.mark.parametrize("path", ["eager", "sdpa"])
def test_paged_decode_logits_equal_hugging_face(models: tuple, path: str) -> None:
    """Prefill 21 tokens into blocks of 8 (a partial third block), then decode 6 tokens one
    at a time through the cache, across a block boundary; each step's logits match HF's
    full-sequence forward at that position."""
    ours, hf = models
    ids = _prompt(27, seed=2)
    with torch.no_grad():
        ref = hf(ids[None]).logits[0]
    kv = PagedKV.allocate(
        SPEC.layers, 6, 8, SPEC.kv_heads, SPEC.head_dim, dtype=torch.float32, device=CPU
    )
    table, attend = [4, 0, 3, 1], resolve_path(path)[1]
    steps = [(0, 21)] + [(p, 1) for p in range(21, 27)]
    with torch.no_grad():
        for start, new in steps:
            meta = build_metadata([(start, new, table)], 8, CPU, batched=path == "sdpa")
            pos = torch.arange(start, start + new)
            out = ours(ids[pos], pos, kv, meta, attend, torch.tensor([new - 1]))
            assert (out[0] - ref[start + new - 1]).abs().max().item() <= TOL


def test_engine_greedy_tokens_equal_hugging_face_generate(models: tuple) -> None:
    """The whole engine (scheduler, chunked prefill in a 16-token budget, paged cache,
    batching with a second request) generates HF's greedy continuation."""
    _, hf = models
    engine = Engine(EngineConfig(SPEC, kv_blocks=16, block_size=8, max_batch_tokens=16, seed=0))
    prompt = _prompt(37, seed=3).tolist()
    engine.add_request(prompt, 12)
    engine.add_request(_prompt(20, seed=4).tolist(), 5)
    finished = {f.request_id: f for f in engine.run()}
    with torch.no_grad():
        expected = hf.generate(
            torch.tensor([prompt]), max_new_tokens=12, min_new_tokens=12, do_sample=False,
            pad_token_id=258,
        )[0].tolist()  # fmt: skip
    assert list(finished[0].tokens) == expected


def test_forward_flops_equal_flop_counter_mode() -> None:
    model = build_model(SPEC, seed=0, device=CPU, dtype=torch.float32)
    kv = PagedKV.allocate(
        SPEC.layers, 16, 16, SPEC.kv_heads, SPEC.head_dim, dtype=torch.float32, device=CPU
    )
    # a chunk after 20 cached tokens (samples), a decode at context 40, a first chunk of 30
    # tokens that does not reach its prompt's end (no logits)
    spans = [(20, 13, [0, 1, 2]), (39, 1, [3, 4, 5]), (0, 30, [6, 7])]
    work = [RequestWork(13, 33), RequestWork(1, 40), RequestWork(30, 30, samples=False)]
    ids = _prompt(44)
    pos = torch.cat([torch.arange(s, s + n) for s, n, _ in spans])
    meta = build_metadata(spans, 16, CPU, batched=False)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(ids, pos, kv, meta, resolve_path("eager")[1], torch.tensor([12, 13]))
    measured = counter.get_total_flops()
    cost = step_cost(SPEC, work, dtype="fp32")
    assert measured == cost.flops  # exact: see the module docstring
    # the convention matters: counting only causal pairs would be off by the masked half
    halved = cost.flops - cost.attention_flops * (
        1 - sum(causal_pairs(w.new_tokens, w.context) for w in work)
        / sum(w.new_tokens * w.context for w in work)
    )  # fmt: skip
    assert measured - halved > 0.01 * measured


@pytest.mark.parametrize("tied", [False, True])
def test_parameter_count_equals_the_cost_model(tied: bool) -> None:
    spec = replace(SPEC, tied_embeddings=tied)
    model = build_model(spec, seed=0, device=CPU, dtype=torch.float32)
    assert sum(p.numel() for p in model.parameters()) == spec.total_params
    assert (model.lm_head.weight is model.model.embed_tokens.weight) is tied


def test_the_same_seed_gives_the_same_weights() -> None:
    a, b, c = (build_model(SPEC, seed=s, device=CPU, dtype=torch.float32) for s in (0, 0, 1))
    assert torch.equal(a.lm_head.weight, b.lm_head.weight)
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)


def test_mixture_of_experts_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="mixture-of-experts"):
        build_model(
            PRESETS["mixtral-8x7b"], seed=0, device=torch.device("meta"), dtype=torch.float32
        )
