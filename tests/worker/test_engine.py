"""The engine end to end: the eviction scenario with hand-derived numbers, preemption, and
the hooks receiving exactly what the worker counted."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'")

from gpumetrics.catalog import engine as cat
from gpumetrics.costmodel import PRESETS
from gpumetrics.hooks import EngineMetrics
from gpumetrics.testing.sample_values import metric_totals
from gpumetrics.worker import Engine, EngineConfig, FinishedRequest, WorkerSummary

SPEC = PRESETS["tiny"]
BS = 4


def _engine(blocks: int, **kw: Any) -> Engine:
    return Engine(EngineConfig(SPEC, kv_blocks=blocks, block_size=BS, max_batch_tokens=64, **kw))


def _one(engine: Engine, prompt: list[int], max_tokens: int) -> FinishedRequest:
    engine.add_request(prompt, max_tokens)
    (done,) = engine.run()
    return done


def _turn_two(blocks: int) -> tuple[Engine, list[tuple[int, int, int]], FinishedRequest]:
    """Turn 1 of A (10 prompt tokens, 3 output), then B (30 prompt tokens, 2 output), then
    turn 2 of A (A's 13 tokens + 5 new). Returns the engine, (evicted, hit, recomputed) after
    each request, and A's second turn."""
    engine = _engine(blocks)
    marks = []

    def mark() -> None:
        s = engine.stats
        marks.append((s.evicted_blocks, s.prefix_hit_tokens, s.recomputed_tokens))

    a1 = _one(engine, list(range(1, 11)), 3)
    mark()
    _one(engine, list(range(100, 130)), 2)
    mark()
    a2 = _one(engine, [*a1.tokens, 200, 201, 202, 203, 204], 4)
    mark()
    return engine, marks, a2


def test_idle_conversation_is_evicted_and_its_next_turn_recomputes() -> None:
    """8 blocks of 4 tokens (32 slots), one sequence at a time.

    A turn 1: 10 prompt + 3 output tokens; KV is computed for 10 + 3 − 1 = 12 tokens (the
    last output is sampled, never fed back): 3 full blocks, cached when A finishes; the
    block-aligned turn-1 length is 12. B: 30 prompt tokens need ⌈30/4⌉ = 8 blocks: the 5
    blank ones, then A's 3 cached ones, least recently used first: 3 evictions. A turn 2
    (18 tokens): its first 3 blocks were evicted — a miss (0 hit tokens) and 12 recomputed
    tokens. B computed 30 + 2 − 1 = 31 tokens: 7 full cached blocks and a partial (blank) one;
    A's 18 + 4 − 1 = 21 computed tokens need 6 blocks: the blank one, then 5 evictions.
    """
    engine, marks, a2 = _turn_two(blocks=8)
    assert marks[0] == (0, 0, 0)
    assert marks[1] == (3, 0, 0)
    assert marks[2] == (3 + 5, 0, 12)
    assert a2.cached_tokens == 0
    assert a2.prompt_tokens == 18
    summary = engine.summary()
    assert (summary.evicted_blocks, summary.recomputed_tokens) == (8, 12)
    assert summary.prefix_query_tokens == 10 + 30 + 18
    assert summary.prefix_hit_tokens == 0


def test_with_a_large_pool_the_same_turn_hits() -> None:
    """64 blocks: B takes blank blocks, A's 3 cached blocks survive, turn 2 hits 12 tokens."""
    engine, marks, a2 = _turn_two(blocks=64)
    assert marks[2] == (0, 12, 0)
    assert a2.cached_tokens == 12
    assert engine.summary().prefix_hit_ratio == pytest.approx(12 / 58)


def _assert_hooks_match(summary: WorkerSummary, metrics: EngineMetrics) -> None:
    got = metric_totals(metrics.snapshot())
    assert got[cat.STEPS.name] == summary.steps
    assert got[cat.PREFIX_QUERIED.name] == summary.prefix_query_tokens
    assert got[cat.PREFIX_HIT.name] == summary.prefix_hit_tokens
    assert got[cat.KV_EVICTED_BLOCKS.name] == summary.evicted_blocks
    assert got[cat.RECOMPUTED_TOKENS.name] == summary.recomputed_tokens
    assert got[cat.PREEMPTIONS.name] == summary.preemptions
    assert got[cat.PROMPT_TOKENS.name] == summary.prompt_tokens
    assert got[cat.GENERATED_TOKENS.name] == summary.generated_tokens
    assert got[cat.FINISHED_REQUESTS.name] == summary.requests
    assert got[cat.TTFT.name] == summary.requests
    assert got[cat.FLOPS.name] == pytest.approx(summary.flops)
    assert got[cat.STEP_SEQUENCES.name] == pytest.approx(
        summary.mean_batch_sequences * summary.steps
    )
    assert got[cat.HOOK_ERRORS.name] == 0  # every call was valid
    if summary.recomputed_tokens:
        assert got[cat.RECOMPUTED_FLOPS.name] > 0


def test_hooks_receive_the_eviction_scenario() -> None:
    engine, _, _ = _turn_two(blocks=8)
    summary = engine.summary()
    _assert_hooks_match(summary, engine.metrics)
    got = metric_totals(engine.metrics.snapshot())
    assert got[cat.KV_CAPACITY_BLOCKS.name] == 8
    assert got[cat.KV_USED_BLOCKS.name] == 0
    assert got[cat.KV_EVICTABLE_BLOCKS.name] == engine.blocks.num_evictable > 0


def test_preemption_under_block_pressure_reaches_the_hooks() -> None:
    """Six blocks of 4, two requests that each grow to 5 blocks: one is preempted and
    recomputed; both finish with all their tokens."""
    engine = _engine(6, max_batch=2)
    engine.add_request(list(range(1, 9)), 12)
    engine.add_request(list(range(50, 58)), 12)
    finished = engine.run()
    summary = engine.summary()
    assert sorted(f.output_tokens for f in finished) == [12, 12]
    assert summary.preemptions >= 1
    assert summary.recomputed_tokens > 0
    _assert_hooks_match(summary, engine.metrics)


def test_finished_requests_carry_worker_clock_timings() -> None:
    ticks = iter(range(10_000))
    engine = Engine(
        EngineConfig(SPEC, kv_blocks=16, block_size=BS), clock=lambda: float(next(ticks))
    )
    done = _one(engine, list(range(1, 7)), 4)
    assert done.output_tokens == 4
    assert len(done.inter_token_s) == 3
    assert 0 < done.ttft_s < done.e2e_s
    assert all(gap > 0 for gap in done.inter_token_s)
    assert done.e2e_s == pytest.approx(done.ttft_s + sum(done.inter_token_s))


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "message"),
    [
        ([], 4, "non-empty prompt"),
        ([1, 2], 0, "max_tokens > 0"),
        ([1] * 2040, 16, "exceed the model's context"),
        ([1] * 60, 10, "more than the 16 blocks"),
        ([1, 999], 1, "token ids must be in"),
    ],
)
def test_requests_that_can_never_fit_are_refused(
    prompt: list[int], max_tokens: int, message: str
) -> None:
    engine = _engine(16)
    with pytest.raises(ValueError, match=message):
        engine.add_request(prompt, max_tokens)


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    import torch  # noqa: PLC0415

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="sees no CUDA device"):
        Engine(EngineConfig(SPEC, device="cuda"))


def test_a_failing_fused_path_falls_back_to_eager_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gpumetrics.worker import attention  # noqa: PLC0415

    def unsupported(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no kernel for this input")

    prompt = list(range(1, 20))
    reference = _one(_engine(16, attention="eager"), prompt, 5)
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", unsupported)
    engine = _engine(16)
    done = _one(engine, prompt, 5)
    assert done.tokens == reference.tokens
    assert engine.summary().attention_path.startswith("eager (sdpa failed: no kernel")
