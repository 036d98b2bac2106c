"""LinearCost (the plugin's per-step cost from totals) against the cost model itself."""

from __future__ import annotations

import random

import pytest

from gpumetrics.costmodel import PRESETS, RequestWork, step_cost
from gpumetrics.integrations.vllm_cost import LinearCost


@pytest.mark.parametrize("name", ["llama-3-8b", "qwen2.5-7b", "qwen3-8b", "mixtral-8x7b"])
@pytest.mark.parametrize("seed", range(5))
def test_totals_cost_what_step_cost_says_for_the_requests(name: str, seed: int) -> None:
    spec = PRESETS[name]
    rng = random.Random(seed)
    work = []
    for _ in range(rng.randint(1, 64)):
        new = rng.choice((1, 1, 1, rng.randint(1, 512)))
        work.append(RequestWork(new, new + rng.randint(0, 4096), samples=rng.random() < 0.9))
    oracle = step_cost(spec, work, dtype="bf16", kv_dtype="fp8")
    cost = LinearCost(spec, dtype="bf16", kv_dtype="fp8")
    tokens = sum(w.new_tokens for w in work)
    token_context = sum(w.new_tokens * w.context for w in work)
    logits = sum(w.samples for w in work)
    context = sum(w.context for w in work)
    assert cost.flops(tokens, token_context, logits) == pytest.approx(oracle.flops, rel=1e-12)
    assert cost.read_bytes(tokens, context) == pytest.approx(oracle.read_bytes, rel=1e-12)
    assert cost.write_bytes(tokens) == pytest.approx(oracle.kv_write_bytes, rel=1e-12)
