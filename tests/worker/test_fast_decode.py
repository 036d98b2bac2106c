"""The fast decode path against the reference path, on CPU (the graph-safe step run eagerly).

The oracle is the reference path itself: the same engine state, the same decode step, the
logits `llama.CausalLM.forward` computes with the eager or sdpa attention. fp32: logits within
1e-5; greedy tokens, summaries and every hook value identical over runs with padding rows,
prefix hits, evictions and preemptions. CUDA graphs are checked on CUDA (`gpu` marker).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

torch = pytest.importorskip(
    "torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'"
)

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from gpumetrics.costmodel import PRESETS, RequestWork, step_cost  # noqa: E402
from gpumetrics.worker import Engine, EngineConfig  # noqa: E402
from gpumetrics.worker.attention import eager_attention, sdpa_attention  # noqa: E402
from gpumetrics.worker.decode_oracle import prefill_logits, reference_decode_logits  # noqa: E402
from gpumetrics.worker.fast_decode import (  # noqa: E402
    BF16_ERROR_FLOOR,
    BF16_ERROR_RATIO,
    FastDecoder,
    build_fast_decoder,
    capture_sizes,
)
from gpumetrics.worker.llama import build_model  # noqa: E402
from gpumetrics.worker.scheduler import SchedulerOutput  # noqa: E402

SPEC = PRESETS["tiny"]
CPU = torch.device("cpu")


def _engine(mode: str, blocks: int = 24, **kw: Any) -> Engine:
    ticks = iter(range(1_000_000))
    config = EngineConfig(
        SPEC, kv_blocks=blocks, block_size=4, max_batch=5, max_batch_tokens=48,
        fast_decode=mode, **kw,
    )  # fmt: skip
    return Engine(config, clock=lambda: float(next(ticks)))


def _workload(engine: Engine) -> list[tuple[int, ...]]:
    """Ten requests in three waves; the second repeats prompts of the first (prefix hits) in
    a pool too small to keep them all (evictions); the third outgrows it (a preemption).
    Output tokens by request."""
    first = [[(7 * i + j) % 300 + 1 for j in range(5 + 3 * i)] for i in range(5)]
    for prompt in first:
        engine.add_request(prompt, 6)
    done = engine.run()
    for i, prompt in enumerate(first[:2]):
        engine.add_request([*prompt, 9, 8, 7], 16 + i)
    engine.add_request(list(range(40, 80)), 10)
    done += engine.run()
    for start in (100, 150):  # two that grow to 13 blocks each: one is preempted
        engine.add_request(list(range(start, start + 8)), 44)
    done += engine.run()
    return [f.tokens for f in sorted(done, key=lambda f: f.request_id)]


def _snapshot(engine: Engine) -> list[str]:
    return sorted(f"{s.metric} {s.labels} {s.value}" for s in engine.metrics.snapshot())


def test_greedy_tokens_summary_and_hooks_equal_the_reference_engine() -> None:
    ref, fast = _engine("off"), _engine("on")
    assert _workload(fast) == _workload(ref)
    assert fast.runner.fast is not None
    assert fast.runner.fast.steps > 10
    s_ref, s_fast = ref.summary(), fast.summary()
    assert s_ref.evicted_blocks > 0
    assert s_ref.prefix_hit_tokens > 0
    assert s_ref.preemptions > 0
    assert s_fast.attention_path == "fast-decode+sdpa"
    assert s_ref.attention_path == "sdpa"
    assert {**s_fast.as_dict(), "attention_path": "sdpa"} == s_ref.as_dict()
    assert _snapshot(fast) == _snapshot(ref)  # same steps, FLOPs, bytes, KV, timings


@pytest.mark.parametrize("attend", [sdpa_attention, eager_attention], ids=["sdpa", "eager"])
def test_every_decode_step_has_the_reference_logits(
    attend: Callable[..., torch.Tensor],
) -> None:
    """Each fast step is preceded by the reference forward on the same state (which writes
    the same K/V); the logits agree to 1e-5 with it and with a fresh prefill of each whole
    sequence, and the block tables the step used are the sequences' own."""
    engine = _engine("on")
    fast = engine.runner.fast
    assert fast is not None
    decode = fast.decode
    seen: list[int] = []

    def checked(out: SchedulerOutput) -> list[int]:
        expected = reference_decode_logits(engine.runner.model, engine.runner.kv, out, CPU, attend)
        tokens = decode(out)
        assert fast.last_logits is not None
        torch.testing.assert_close(fast.last_logits, expected, atol=1e-5, rtol=0)
        for i, e in enumerate(out.entries):
            table = e.seq.block_table
            assert fast._table[: len(table), i].tolist() == table
        seen.append(len(out.entries))
        if attend is sdpa_attention:  # once is enough: a prefill per sequence and step
            sequences = [e.seq.tokens[: e.context] for e in out.entries]
            prefilled = prefill_logits(engine.runner.model, sequences, CPU, 4)
            torch.testing.assert_close(fast.last_logits, prefilled, atol=1e-5, rtol=0)
        return tokens

    fast.decode = checked  # type: ignore[method-assign]
    _workload(engine)
    assert {1, 3, 5} <= set(seen)  # padded (3 -> 4, 5 -> 5) and unpadded batches


def test_padding_rows_write_only_the_scratch_block() -> None:
    engine = _engine("on")
    fast = engine.runner.fast
    assert fast is not None
    assert engine.runner.kv.scratch_block == 24
    for i in range(3):
        engine.add_request([1 + i, 2, 3, 4, 5, 6], 4)
    engine.step()  # the three prefills
    out = engine.scheduler.schedule()
    assert fast.applies(out)
    assert len(out.entries) == 3
    before = [k.clone() for k in engine.runner.kv.k]
    fast.decode(out)
    written = {e.seq.block_table[e.start // 4] * 4 + e.start % 4 for e in out.entries}
    for old, new in zip(before, engine.runner.kv.k, strict=True):
        changed = (old != new).flatten(2).any(-1).flatten().nonzero().flatten().tolist()
        assert set(changed) - written <= {24 * 4}  # the scratch block's first slot only


def test_step_flops_are_the_cost_models_over_the_padded_width() -> None:
    """FlopCounterMode over one eager step of b sequences: the cost model's FLOPs of b decodes
    at context W · block_size (the torch attention reads the whole block-table row)."""
    engine = _engine("on")
    fast = engine.runner.fast
    assert fast is not None
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        fast._step(4)
    keys = fast.width * fast.block_size
    expected = step_cost(SPEC, [RequestWork(1, keys, True)] * 4, dtype="fp32", kv_dtype="fp32")
    assert counter.get_total_flops() == expected.flops


def test_applies_only_to_all_decode_steps_within_the_captured_sizes() -> None:
    engine = _engine("on")
    fast = engine.runner.fast
    assert fast is not None
    assert fast.sizes == (1, 2, 4, 5)
    engine.add_request([1, 2, 3, 4, 5], 3)
    prefill = engine.scheduler.schedule()
    assert not fast.applies(prefill)
    engine.scheduler.update(prefill, [7], 0.0)
    assert fast.applies(engine.scheduler.schedule())
    assert not fast.applies(SchedulerOutput((), (), (), (), 0, 0))


def test_fused_projections_are_views_and_change_nothing() -> None:
    engine = _engine("on")
    assert engine.runner.fast is not None
    attn = engine.runner.model.model.layers[0].self_attn
    fused = engine.runner.fast._layers[0][1]
    assert attn.q_proj.weight.data_ptr() == fused.data_ptr()
    assert attn.v_proj.weight.shape == (SPEC.kv_heads * SPEC.head_dim, SPEC.hidden)


def test_capture_sizes() -> None:
    assert capture_sizes(1) == (1,)
    assert capture_sizes(64) == (1, 2, 4, 8, 16, 32, 64)
    assert capture_sizes(300) == (1, 2, 4, 8, 16, 32, 64, 128, 256, 300)


def test_modes() -> None:
    engine = _engine("off")
    args = (engine.runner.model, engine.runner.kv, SPEC)
    assert build_fast_decoder("off", *args, max_batch=4, kv_blocks=24, device=CPU) is None
    assert build_fast_decoder("auto", *args, max_batch=4, kv_blocks=24, device=CPU) is None
    built = build_fast_decoder("on", *args, max_batch=4, kv_blocks=24, device=CPU)
    assert isinstance(built, FastDecoder)
    assert built.width == 24
    odd = replace(SPEC, head_dim=24)
    runner = engine.runner
    with pytest.raises(ValueError, match="head_dim 24 is not a power of two"):
        build_fast_decoder("on", runner.model, runner.kv, odd, max_batch=4, kv_blocks=24,
                           device=CPU)  # fmt: skip
    with pytest.raises(ValueError, match="fast_decode must be one of"):
        build_fast_decoder("fast", *args, max_batch=4, kv_blocks=24, device=CPU)
    with pytest.raises(ValueError, match="fast_decode must be one of"):
        _engine("yes")


@pytest.mark.gpu
def test_cuda_graph_steps_are_as_accurate_as_the_reference_in_bf16() -> None:
    """Against fp32 logits of the upcast weights (a fresh prefill), the fast path's bf16
    error is within BF16_ERROR_RATIO of the reference path's."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    config = EngineConfig(SPEC, device="cuda", kv_blocks=64, block_size=16, max_batch=8)
    engine = Engine(config)
    fast = engine.runner.fast
    assert fast is not None
    assert fast._graphs
    truth_model = build_model(
        SPEC, seed=0, device=engine.runner.device, dtype=torch.bfloat16
    ).float()
    decode, errors = fast.decode, []

    def checked(out: SchedulerOutput) -> list[int]:
        expected = reference_decode_logits(
            engine.runner.model, engine.runner.kv, out, engine.runner.device
        )
        tokens = decode(out)
        assert fast.last_logits is not None
        truth = prefill_logits(
            truth_model, [e.seq.tokens[: e.context] for e in out.entries], engine.runner.device
        )
        errors.append(((fast.last_logits.float() - truth).abs(), (expected - truth).abs()))
        return tokens

    fast.decode = checked  # type: ignore[method-assign]
    for i in range(6):
        engine.add_request([(5 * i + j) % 300 + 1 for j in range(20 + 7 * i)], 12)
    engine.run()
    fast_err = torch.cat([f.flatten() for f, _ in errors])
    ref_err = torch.cat([r.flatten() for _, r in errors])
    assert fast_err.max() <= BF16_ERROR_RATIO * ref_err.max() + BF16_ERROR_FLOOR
    assert fast_err.mean() <= BF16_ERROR_RATIO * ref_err.mean() + BF16_ERROR_FLOOR
    assert engine.summary().attention_path == "fast-decode+sdpa"
