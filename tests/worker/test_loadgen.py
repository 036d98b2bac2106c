"""The multi-turn chat load: seeded content, shared system prompts, turns that extend the
conversation, and — on a deterministic clock — evictions and recomputes under pressure."""

from __future__ import annotations

from dataclasses import replace

import pytest

pytest.importorskip("torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'")

from gpumetrics.costmodel import PRESETS
from gpumetrics.worker import (
    SCENARIOS,
    ByteTokenizer,
    ChatLoad,
    ChatScenario,
    Engine,
    EngineConfig,
    TurnRequest,
    WorkerSummary,
    run_load,
)
from gpumetrics.worker.loadgen import VirtualClock
from gpumetrics.worker.tokenizer import BOS

SPEC = PRESETS["tiny"]
TOKENIZER = ByteTokenizer(SPEC.vocab)


class FakeClock:
    """Advances `tick` seconds per reading; `sleep` jumps ahead. Makes a run deterministic."""

    def __init__(self, tick: float = 0.001) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _first_turns(scenario: ChatScenario, n: int) -> list[tuple[int, ...]]:
    load = ChatLoad(scenario, TOKENIZER, max_context=2048)
    turns = load.due(1e9, n)
    assert len(turns) == n
    return [t.prompt for t in turns]


def test_the_same_seed_gives_the_same_load() -> None:
    chat = SCENARIOS["chat"]
    assert _first_turns(chat, 6) == _first_turns(chat, 6)
    assert _first_turns(chat, 6) != _first_turns(replace(chat, seed=1), 6)


def test_conversations_share_a_few_system_prompts() -> None:
    scenario = replace(SCENARIOS["chat"], system_prompts=2, system_tokens=40)
    load = ChatLoad(scenario, TOKENIZER, max_context=2048)
    firsts = load.due(1e9, 8)
    heads = {t.prompt[:40] for t in firsts}
    assert heads == {tuple(s) for s in load.system}
    assert len(heads) == 2
    assert all(t.prompt[0] == BOS and t.turn == 1 for t in firsts)
    lo, hi = scenario.user_tokens
    assert all(40 + lo <= len(t.prompt) <= 40 + hi for t in firsts)


def test_arrivals_follow_the_rate_and_turns_are_due_in_order() -> None:
    load = ChatLoad(replace(SCENARIOS["chat"], arrival_rate=100.0), TOKENIZER, max_context=2048)
    turns = load.due(10.0)
    assert 800 < len(turns) < 1200  # Poisson, mean 1000 in 10 s
    assert [t.due for t in turns] == sorted(t.due for t in turns)
    assert load.next_due() > 10.0


def test_the_next_turn_extends_the_conversation_after_a_think_time() -> None:
    scenario = replace(SCENARIOS["chat"], turns=(3, 3), think_time_s=2.0, arrival_rate=1e-3)
    load = ChatLoad(scenario, TOKENIZER, max_context=2048)
    (first,) = load.due(load.next_due())
    answer = (*first.prompt, *[65] * first.max_tokens)
    load.finished(first, answer, now=first.due + 5.0)
    assert load.next_due() > first.due + 5.0
    (second,) = [t for t in load.due(first.due + 100.0) if t.conversation == first.conversation]
    assert second.turn == 2
    assert second.due > first.due + 5.0
    assert second.prompt[: len(answer)] == answer
    assert len(second.prompt) > len(answer)


def test_a_conversation_ends_when_its_next_turn_would_not_fit() -> None:
    scenario = replace(SCENARIOS["chat"], turns=(4, 4), think_time_s=0.0)
    load = ChatLoad(scenario, TOKENIZER, max_context=200)
    (first,) = load.due(load.next_due())
    load.finished(first, (*first.prompt, *[1] * 120), now=1.0)
    assert all(t.conversation != first.conversation for t in load.due(1.0, 50))


def test_run_load_under_pressure_evicts_and_recomputes() -> None:
    """A 24-block pool (384 tokens) and up to 8 sequences: idle conversations lose their
    blocks to others while they think, and their next turn recomputes (deterministic clock:
    1 ms per clock reading)."""
    clock = FakeClock()
    config = EngineConfig(SPEC, kv_blocks=24, block_size=16, max_batch=8, max_batch_tokens=256)
    engine = Engine(config, clock=clock)
    scenario = replace(SCENARIOS["chat"], arrival_rate=20.0, think_time_s=0.5)
    load = ChatLoad(scenario, TOKENIZER, max_context=24 * 16)
    summary = run_load(engine, load, requests=40, sleep=clock.sleep)
    assert summary.requests == 40
    assert summary.evicted_blocks > 0
    assert summary.recomputed_tokens > 0
    assert 0 < summary.prefix_hit_tokens < summary.prefix_query_tokens
    assert summary.generated_tokens > 0
    assert summary.prompt_tokens > 0
    assert 0 < summary.mean_batch_occupancy <= 1
    assert summary.tokens_per_second == pytest.approx(summary.generated_tokens / summary.wall_s)


def test_run_load_for_a_duration_stops_admitting_and_drains() -> None:
    clock = FakeClock()
    engine = Engine(EngineConfig(SPEC, kv_blocks=64), clock=clock)
    load = ChatLoad(SCENARIOS["chat"], TOKENIZER, max_context=1024)
    summary = run_load(engine, load, duration_s=1.0, sleep=clock.sleep)
    assert summary.requests > 0
    assert not engine.has_work
    assert summary.wall_s >= 1.0


def test_run_load_needs_exactly_one_limit() -> None:
    engine = Engine(EngineConfig(SPEC, kv_blocks=8))
    load = ChatLoad(SCENARIOS["chat"], TOKENIZER, max_context=128)
    with pytest.raises(ValueError, match="exactly one"):
        run_load(engine, load)
    with pytest.raises(ValueError, match="exactly one"):
        run_load(engine, load, requests=1, duration_s=1.0)


@pytest.mark.parametrize(
    "bad",
    [{"user_tokens": (0, 4)}, {"turns": (3, 2)}, {"arrival_rate": 0.0}, {"system_tokens": 0}],
)
def test_scenario_validation(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        ChatScenario(**bad)  # type: ignore[arg-type]


class _Recording(ChatLoad):
    """A ChatLoad that keeps every turn it hands out, in order."""

    def __init__(self, scenario: ChatScenario, tokenizer: ByteTokenizer, *, max_context: int):
        super().__init__(scenario, tokenizer, max_context=max_context)
        self.sent: list[tuple[int, int, tuple[int, ...], int]] = []

    def due(self, now: float, limit: int | None = None) -> list[TurnRequest]:
        out = super().due(now, limit)
        self.sent.extend((t.conversation, t.turn, t.prompt, t.max_tokens) for t in out)
        return out


def _pressured_run(
    tick: float, virtual: VirtualClock | None
) -> tuple[list[tuple[int, int, tuple[int, ...], int]], WorkerSummary]:
    """The eviction scenario above, on an engine whose clock moves `tick` s per reading
    (a faster or slower machine), with or without a virtual load clock."""
    clock = FakeClock(tick)
    config = EngineConfig(SPEC, kv_blocks=24, block_size=16, max_batch=8, max_batch_tokens=256)
    engine = Engine(config, clock=clock)
    scenario = replace(SCENARIOS["chat"], arrival_rate=20.0, think_time_s=0.5, seed=3)
    load = _Recording(scenario, TOKENIZER, max_context=24 * 16)
    summary = run_load(engine, load, requests=30, sleep=clock.sleep, virtual=virtual)
    return load.sent, summary


_OUTCOMES = (
    "prefix_query_tokens",
    "prefix_hit_tokens",
    "evicted_blocks",
    "recomputed_tokens",
    "generated_tokens",
    "prompt_tokens",
    "preemptions",
)


def test_virtual_clock_gives_the_same_run_on_any_machine() -> None:
    """Same seed, engines 20x apart in speed: on the virtual clock the same requests go out
    in the same order and hit the prefix cache identically; on the engine's clock the
    interleaving follows the machine's speed and the runs differ."""
    fast_sent, fast = _pressured_run(0.001, VirtualClock())
    slow_sent, slow = _pressured_run(0.02, VirtualClock())
    assert len(fast_sent) == 30
    assert fast_sent == slow_sent
    for field in _OUTCOMES:
        assert getattr(fast, field) == getattr(slow, field), field
    assert fast.evicted_blocks > 0  # the pressure is real: hits depend on the order
    wall_fast_sent, _ = _pressured_run(0.001, None)
    wall_slow_sent, _ = _pressured_run(0.02, None)
    assert wall_fast_sent != wall_slow_sent


def test_virtual_clock_with_the_real_clock_twice() -> None:
    """Two runs on the real perf_counter: the virtual schedule makes them identical."""
    runs = []
    for _ in range(2):
        engine = Engine(EngineConfig(SPEC, kv_blocks=24, max_batch=8, max_batch_tokens=256))
        load = _Recording(
            replace(SCENARIOS["chat"], arrival_rate=50.0, think_time_s=0.05),
            TOKENIZER,
            max_context=24 * 16,
        )
        summary = run_load(engine, load, requests=20, virtual=VirtualClock(0.005))
        runs.append((load.sent, summary.prefix_hit_tokens, summary.evicted_blocks))
    assert runs[0] == runs[1]


def test_virtual_clock_advances_per_step_and_jumps_idle_waits() -> None:
    clock = VirtualClock(0.25)
    clock.step()
    clock.step()
    assert clock.now == 0.5
    clock.wait_until(2.0)
    assert clock.now == 2.0
    clock.wait_until(1.0)  # never backwards
    assert clock.now == 2.0
    with pytest.raises(ValueError, match="step_s"):
        VirtualClock(0)


def test_virtual_duration_is_in_simulated_seconds() -> None:
    """duration 0.5 virtual s at 10 ms per step: admission stops after at most 50 busy
    steps' worth of simulated time, however slow the engine's clock is."""
    clock = FakeClock(1.0)  # one whole second per reading: 0.5 s of wall time is 1 reading
    engine = Engine(EngineConfig(SPEC, kv_blocks=64), clock=clock)
    load = _Recording(SCENARIOS["chat"], TOKENIZER, max_context=1024)
    virtual = VirtualClock()
    summary = run_load(engine, load, duration_s=0.5, virtual=virtual)
    assert summary.requests == len(load.sent) > 1
    assert not engine.has_work
