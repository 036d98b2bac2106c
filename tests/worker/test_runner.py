"""ModelRunner: one greedy token per sampling entry, the same whether sequences run batched
or alone; an engine steps the runner it is given."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'")

from gpumetrics.costmodel import PRESETS
from gpumetrics.worker.block_manager import BlockManager
from gpumetrics.worker.engine import Engine, EngineConfig
from gpumetrics.worker.runner import ModelRunner
from gpumetrics.worker.scheduler import Scheduler
from gpumetrics.worker.sequence import Sequence

SPEC = PRESETS["tiny"]
PROMPTS = [list(range(3, 14)), list(range(40, 45)), list(range(90, 120))]


def _runner(attention: str = "auto") -> ModelRunner:
    return ModelRunner(SPEC, kv_blocks=16, block_size=4, attention=attention, seed=3)


def _first_tokens(prompts: list[list[int]], runner: ModelRunner, budget: int) -> list[int]:
    """Prefill `prompts` in one step of `budget` tokens; the sampled tokens, in order."""
    scheduler = Scheduler(BlockManager(16, 4), max_batch=8, max_batch_tokens=budget)
    for rid, prompt in enumerate(prompts):
        scheduler.add(Sequence(rid, prompt, 1, 0.0))
    out = scheduler.schedule()
    sampled = runner.run(out)
    assert len(sampled) == sum(e.samples for e in out.entries)
    return sampled


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_a_batched_step_samples_what_each_sequence_samples_alone(attention: str) -> None:
    """Batch of 3 prompts in one step, against each in a fresh runner; a 20-token budget
    leaves the third prompt's chunk short of its end: it samples nothing."""
    batched = _first_tokens(PROMPTS, _runner(attention), budget=20 + 11 + 5)
    alone = [_first_tokens([p], _runner(attention), budget=64)[0] for p in PROMPTS[:2]]
    assert batched == alone
    assert all(0 <= t < SPEC.vocab for t in batched)


def test_an_unknown_dtype_is_refused() -> None:
    with pytest.raises(ValueError, match="dtype must be one of"):
        ModelRunner(SPEC, dtype="fp8")


def test_an_engine_steps_the_runner_it_is_given() -> None:
    config = EngineConfig(SPEC, kv_blocks=16, block_size=4, attention="eager", seed=3)
    runner = _runner("eager")
    given, built = Engine(config, runner=runner), Engine(config)
    assert given.runner is runner
    for engine in (given, built):
        engine.add_request(PROMPTS[0], 5)
    assert given.run()[0].tokens == built.run()[0].tokens
    assert given.summary().attention_path == "eager"
