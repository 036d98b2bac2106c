"""The hooks never raise into the engine: garbage is dropped whole and counted."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumetrics.hooks import EngineMetrics
from gpumetrics.hooks._state import EngineState

from .helpers import SMALL, counters

GOOD_STEP: dict[str, Any] = dict(
    phase="decode",
    sequences=1,
    prefill_tokens=0,
    decode_tokens=1,
    duration_s=0.01,
    flops=1.0,
    read_bytes=1.0,
    write_bytes=1.0,
)
GOOD_REQ: dict[str, Any] = dict(
    ttft_s=0.1, inter_token_s=[0.01], e2e_s=0.2, prompt_tokens=5, cached_tokens=1, output_tokens=2
)
GARBAGE: list[Any] = [-1, -0.5, None, "3", math.nan, math.inf, -math.inf, [], object(), 10**400]


def _step_with(m: EngineMetrics, *, key: str, bad: Any) -> None:
    m.record_step(**{**GOOD_STEP, key: bad})


def _request_with(m: EngineMetrics, *, key: str, bad: Any) -> None:
    m.record_request_finished(**{**GOOD_REQ, key: bad})


def _calls(bad: Any) -> list[Callable[[EngineMetrics], None]]:
    """One call per hook with `bad` in one argument."""
    calls: list[Callable[[EngineMetrics], None]] = [
        lambda m: m.record_eviction(bad),
        lambda m: m.record_preemption(bad),
        lambda m: m.record_recompute(bad),
        lambda m: m.set_queue(bad, 1),
        lambda m: m.set_queue(1, bad),
        lambda m: m.record_prefix_lookup(queried_tokens=bad, hit_tokens=0),
        lambda m: m.record_prefix_lookup(queried_tokens=5, hit_tokens=bad),
        lambda m: m.record_kv(used_blocks=bad, total_blocks=10),
        lambda m: m.record_kv(used_blocks=1, total_blocks=bad),
        lambda m: m.record_kv(used_blocks=1, total_blocks=10, evictable_blocks=bad),
        lambda m: m.set_cache_config(block_size=bad, num_gpu_blocks=10),
        lambda m: m.set_cache_config(block_size=16, num_gpu_blocks=bad),
        lambda m: m.set_lora(max_lora=bad),
    ]
    if bad != []:  # no adapters is a valid list
        calls.append(lambda m: m.set_lora(max_lora=2, running=bad))
    if not isinstance(bad, str):  # "3" is a valid adapter name
        calls.append(lambda m: m.set_lora(max_lora=2, waiting=["a", bad]))
    if bad is not None:  # flops=None means "compute it"
        calls.append(lambda m: m.record_recompute(1, flops=bad))
    optional = ("flops", "read_bytes", "write_bytes")  # None there means "compute it"
    for key in GOOD_STEP:
        if key != "phase" and not (bad is None and key in optional):
            calls.append(functools.partial(_step_with, key=key, bad=bad))
    for key in GOOD_REQ:
        if not (key == "inter_token_s" and bad in (None, [])):  # None and [] mean "no gaps"
            calls.append(functools.partial(_request_with, key=key, bad=bad))
    calls.append(lambda m: m.record_request_finished(**{**GOOD_REQ, "inter_token_s": [0.1, bad]}))
    return calls


@pytest.mark.parametrize("bad", GARBAGE, ids=repr)
def test_garbage_is_dropped_and_counted(bad: Any) -> None:
    calls = _calls(bad)
    for call in calls:
        m = EngineMetrics("e0", "m0", model_spec=SMALL)
        before = counters(m)
        call(m)  # must not raise
        assert m.hook_errors == 1
        assert counters(m) == before  # nothing half-applied


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.record_step(**{**GOOD_STEP, "phase": "warmup"}),
        lambda m: m.record_step(**{**GOOD_STEP, "phase": None}),
        lambda m: m.record_step(**{**GOOD_STEP, "flops": None}),  # spec set, no work
        lambda m: m.record_step(**{**GOOD_STEP, "flops": None, "work": ["x"]}),
        lambda m: m.record_prefix_lookup(queried_tokens=5, hit_tokens=6),
        lambda m: m.record_kv(used_blocks=11, total_blocks=10),
        lambda m: m.record_kv(used_blocks=0, total_blocks=0),
        lambda m: m.record_kv(used_blocks=1, total_blocks=10, evictable_blocks=11),
        lambda m: m.record_request_finished(**{**GOOD_REQ, "cached_tokens": 6}),
        lambda m: m.record_request_finished(**{**GOOD_REQ, "inter_token_s": "abc"}),
        lambda m: m.record_request_finished(**{**GOOD_REQ, "inter_token_s": 0.5}),
        lambda m: m.record_recompute(-3),
    ],
)
def test_invalid_combinations_are_dropped(call: Callable[[EngineMetrics], None]) -> None:
    m = EngineMetrics("e0", "m0", model_spec=SMALL)
    before = counters(m)
    call(m)
    assert m.hook_errors == 1
    assert counters(m) == before


def test_first_drop_per_method_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    m = EngineMetrics("e0", "m0")
    with caplog.at_level(logging.DEBUG, logger="gpumetrics.hooks"):
        for _ in range(3):
            m.record_eviction(-1)
        m.set_queue(-1, 0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split()[2] for r in warnings] == ["record_eviction", "set_queue"]
    assert m.hook_errors == 4


def test_readers_never_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: EngineState) -> None:
        raise RuntimeError("broken")

    m = EngineMetrics("e0", "m0")
    monkeypatch.setattr(EngineState, "collect", boom)
    assert m.snapshot() == ()
    assert m.render_text() == b""
    assert m.hook_errors == 2


def test_setup_errors_raise_at_construction() -> None:
    with pytest.raises(ValueError, match="dtype"):
        EngineMetrics("e0", "m0", dtype="bf17")
    with pytest.raises(TypeError):
        EngineMetrics("e0", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kv_block_size"):
        EngineMetrics("e0", "m0", kv_block_size=-16)
    with pytest.raises(TypeError):
        EngineMetrics("e0", "m0", model_spec="llama-3-8b")  # type: ignore[arg-type]


ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.lists(st.floats(allow_nan=True), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(args=st.lists(ANYTHING, min_size=6, max_size=6), which=st.integers(0, 7))
def test_random_arguments_never_raise_and_counters_never_decrease(
    args: list[Any], which: int
) -> None:
    m = EngineMetrics("e0", "m0", model_spec=SMALL)
    m.record_step(**GOOD_STEP)
    before = counters(m)
    a, b, c, d, e, f = args
    calls: list[Callable[[], None]] = [
        lambda: m.record_step(
            phase="decode",
            sequences=a,
            prefill_tokens=b,
            decode_tokens=c,
            duration_s=d,
            flops=e,
            read_bytes=f,
            write_bytes=1.0,
        ),
        lambda: m.record_request_finished(
            ttft_s=a, inter_token_s=b, e2e_s=c, prompt_tokens=d, cached_tokens=e, output_tokens=f
        ),
        lambda: m.record_kv(used_blocks=a, total_blocks=b, evictable_blocks=c),
        lambda: m.record_prefix_lookup(queried_tokens=a, hit_tokens=b),
        lambda: m.record_recompute(a, flops=b),
        lambda: m.record_eviction(a),
        lambda: m.record_preemption(a),
        lambda: m.set_queue(a, b),
    ]
    calls[which]()
    after = counters(m)
    for key, value in before.items():
        if key[0].endswith("_total"):
            assert isinstance(value, int | float)
            new = after[key]
            assert isinstance(new, int | float)
            assert new >= value
            assert math.isfinite(new)
