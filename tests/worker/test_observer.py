"""Step observers: the hooks adapter turns a report into exactly the calls it describes, and a
recording observer sees exactly what the hooks exported — every counter, gauge and histogram
of a run rebuilt from the recorded reports alone."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from gpumetrics.catalog import engine as cat
from gpumetrics.costmodel import PRESETS, RequestWork
from gpumetrics.hooks import EngineMetrics
from gpumetrics.samples import HistogramValue
from gpumetrics.worker.block_manager import PrefixMatch
from gpumetrics.worker.observer import FinishedRequest, HooksObserver, StepLog, StepReport

SPEC = PRESETS["tiny"]

#: What the hooks export from their own configuration or compute themselves, not from a report.
NOT_FROM_REPORTS = {
    cat.ENGINE_INFO.name,
    cat.KV_BLOCK_SIZE.name,
    cat.CACHE_CONFIG_INFO.name,  # the pool's configuration, set once like the block size
    cat.MAX_BATCH_SEQUENCES.name,
    cat.MAX_BATCH_TOKENS.name,
    cat.RECOMPUTED_FLOPS.name,  # the hooks' cost model over the recomputed tokens
    cat.HOOK_ERRORS.name,
    cat.KV_PREDICTED_HIT_RATIO.name,  # the ghost cache over lookup_hashes: test_trace.py
}

Key = tuple[str, tuple[str, ...]]


def _exported(metrics: EngineMetrics) -> dict[Key, Any]:
    """(metric, labels after engine and model) -> value; histograms as (count, sum)."""
    out: dict[Key, Any] = {}
    for s in metrics.snapshot():
        v = s.value
        out[s.metric, tuple(s.labels[2:])] = (
            (v.count, v.sum) if isinstance(v, HistogramValue) else v
        )
    return out


def _expected(reports: list[StepReport]) -> dict[Key, Any]:
    """What the hooks must hold after `reports`, computed from the reports alone."""
    last = reports[-1]
    finished = [f for r in reports for f in r.finished]
    lookups = [m for r in reports for m in r.lookups]
    phases = Counter(r.phase for r in reports)
    gaps = [g for f in finished for g in f.inter_token_s]
    busy = sum(r.duration_s for r in reports)
    return {
        **{(cat.STEPS.name, (p,)): phases[p] for p in ("prefill", "decode", "mixed")},
        (cat.STEP_SEQUENCES.name, ()): sum(r.sequences for r in reports),
        (cat.STEP_TOKENS.name, ("prefill",)): sum(r.prefill_tokens for r in reports),
        (cat.STEP_TOKENS.name, ("decode",)): sum(r.decode_tokens for r in reports),
        (cat.STEP_BUSY.name, ()): pytest.approx(busy),
        (cat.STEP_DURATION.name, ()): (len(reports), pytest.approx(busy)),
        (cat.FLOPS.name, ()): pytest.approx(sum(r.flops for r in reports)),
        (cat.READ_BYTES.name, ()): pytest.approx(sum(r.read_bytes for r in reports)),
        (cat.WRITE_BYTES.name, ()): pytest.approx(sum(r.write_bytes for r in reports)),
        (cat.PREFIX_QUERIED.name, ()): sum(m.queried_tokens for m in lookups),
        (cat.PREFIX_HIT.name, ()): sum(m.hit_tokens for m in lookups),
        (cat.KV_EVICTED_BLOCKS.name, ()): sum(r.evicted_blocks for r in reports),
        (cat.RECOMPUTED_TOKENS.name, ()): sum(sum(r.recomputed) for r in reports),
        (cat.PREEMPTIONS.name, ()): sum(r.preempted for r in reports),
        (cat.KV_CAPACITY_BLOCKS.name, ()): last.kv_total_blocks,
        (cat.KV_USED_BLOCKS.name, ()): last.kv_used_blocks,
        (cat.KV_EVICTABLE_BLOCKS.name, ()): last.kv_evictable_blocks,
        (cat.KV_USAGE.name, ()): pytest.approx(last.kv_used_blocks / last.kv_total_blocks),
        (cat.WAITING_REQUESTS.name, ()): last.waiting,
        (cat.RUNNING_SEQUENCES.name, ()): last.running,
        (cat.PROMPT_TOKENS.name, ()): sum(f.prompt_tokens for f in finished),
        (cat.PROMPT_CACHED_TOKENS.name, ()): sum(f.cached_tokens for f in finished),
        (cat.GENERATED_TOKENS.name, ()): sum(f.output_tokens for f in finished),
        (cat.FINISHED_REQUESTS.name, ()): len(finished),
        (cat.TTFT.name, ()): (len(finished), pytest.approx(sum(f.ttft_s for f in finished))),
        (cat.ITL.name, ()): (len(gaps), pytest.approx(sum(gaps))),
        (cat.E2E.name, ()): (len(finished), pytest.approx(sum(f.e2e_s for f in finished))),
    }


def _assert_hooks_hold(metrics: EngineMetrics, reports: list[StepReport]) -> None:
    got, want = _exported(metrics), _expected(reports)
    assert {k: got[k] for k in want} == want
    assert {name for name, _ in got.keys() - want.keys()} <= NOT_FROM_REPORTS
    assert got[cat.HOOK_ERRORS.name, ()] == 0  # every call was valid


def _finished(rid: int, prompt: int, gaps: tuple[float, ...]) -> FinishedRequest:
    return FinishedRequest(rid, (1,) * (prompt + len(gaps) + 1), prompt, 4, len(gaps) + 1,
                           0.25, gaps, 0.25 + sum(gaps))  # fmt: skip


#: Two hand-written steps: a mixed one that admits, evicts, recomputes and finishes a request,
#: then a decode step that preempts.
REPORTS = [
    StepReport(
        phase="mixed", work=(RequestWork(1, 9), RequestWork(8, 8)), prefill_tokens=8,
        decode_tokens=1, flops=1.0e6, read_bytes=3.0e5, write_bytes=2.0e3,
        lookups=(PrefixMatch((3,), (11,), 8, 4, 4),), lookup_hashes=(None,), evicted_blocks=2,
        recomputed=(4,), preempted=0, kv_used_blocks=5, kv_total_blocks=8, kv_evictable_blocks=1,
        waiting=2, running=2, finished=(_finished(0, 8, (0.5, 0.125)),), duration_s=0.75,
    ),
    StepReport(
        phase="decode", work=(RequestWork(1, 10),), prefill_tokens=0, decode_tokens=1,
        flops=5.0e5, read_bytes=2.5e5, write_bytes=1.0e3, lookups=(), lookup_hashes=(),
        evicted_blocks=0,
        recomputed=(), preempted=1, kv_used_blocks=3, kv_total_blocks=8,
        kv_evictable_blocks=2, waiting=3, running=1, finished=(), duration_s=0.5,
    ),
]  # fmt: skip


def test_a_report_becomes_the_hook_calls_it_describes() -> None:
    """By hand: 2 steps (1 mixed, 1 decode), 3 sequences, 8 prefill + 2 decode tokens,
    1.5 MFLOP, one lookup of 8 tokens hitting 4, 2 evictions, 4 recomputed tokens, 1
    preemption, KV 3 of 8 used at the end with 3 waiting and 1 running, one request of 8
    prompt tokens (4 cached) and 3 outputs, its TTFT 0.25 s and two gaps."""
    metrics = EngineMetrics("e0", SPEC.name, model_spec=SPEC)
    hooks = HooksObserver(metrics)
    for report in REPORTS:
        hooks.on_step(report)
    got = _exported(metrics)
    assert [got[cat.STEPS.name, (p,)] for p in ("prefill", "decode", "mixed")] == [0, 1, 1]
    assert got[cat.STEP_SEQUENCES.name, ()] == 3
    assert (got[cat.STEP_TOKENS.name, ("prefill",)], got[cat.STEP_TOKENS.name, ("decode",)]) == (
        8,
        2,
    )
    assert got[cat.FLOPS.name, ()] == 1.5e6
    assert (got[cat.PREFIX_QUERIED.name, ()], got[cat.PREFIX_HIT.name, ()]) == (8, 4)
    assert got[cat.KV_EVICTED_BLOCKS.name, ()] == 2
    assert got[cat.RECOMPUTED_TOKENS.name, ()] == 4
    assert got[cat.RECOMPUTED_FLOPS.name, ()] > 0  # the hooks price them with the cost model
    assert got[cat.PREEMPTIONS.name, ()] == 1
    assert got[cat.KV_USAGE.name, ()] == 3 / 8
    assert (got[cat.WAITING_REQUESTS.name, ()], got[cat.RUNNING_SEQUENCES.name, ()]) == (3, 1)
    assert got[cat.PROMPT_CACHED_TOKENS.name, ()] == 4
    assert got[cat.GENERATED_TOKENS.name, ()] == 3
    assert got[cat.ITL.name, ()] == (2, 0.625)
    assert got[cat.E2E.name, ()] == (1, 0.875)
    _assert_hooks_hold(metrics, REPORTS)


def test_a_step_log_keeps_every_report_in_order_until_cleared() -> None:
    log = StepLog()
    for report in REPORTS:
        log.on_step(report)
    assert log.reports == REPORTS
    log.clear()
    assert log.reports == []


# --- the engine's observers (torch) ------------------------------------------------------


def _engine(blocks: int, *observers: StepLog, **kw: Any) -> Any:
    pytest.importorskip("torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'")
    from gpumetrics.worker.engine import Engine, EngineConfig  # noqa: PLC0415

    config = EngineConfig(SPEC, kv_blocks=blocks, block_size=4, max_batch_tokens=64, **kw)
    return Engine(config, observers=observers)


def test_a_recording_observer_sees_what_the_hooks_exported_under_eviction() -> None:
    """The eviction scenario of test_engine: A, then B evicting A's blocks, then A's second
    turn missing and recomputing them."""
    log = StepLog()
    engine = _engine(8, log)
    finished = []
    for prompt, outputs in ((list(range(1, 11)), 3), (list(range(100, 130)), 2)):
        engine.add_request(prompt, outputs)
        finished += engine.run()
    engine.add_request([*finished[0].tokens, 200, 201, 202, 203, 204], 4)
    finished += engine.run()
    assert sum(r.evicted_blocks for r in log.reports) == 8
    assert sum(sum(r.recomputed) for r in log.reports) == 12
    assert [f for r in log.reports for f in r.finished] == finished
    _assert_hooks_hold(engine.metrics, log.reports)


def test_a_recording_observer_sees_what_the_hooks_exported_under_preemption() -> None:
    log, second = StepLog(), StepLog()
    engine = _engine(6, log, second, max_batch=2)
    engine.add_request(list(range(1, 9)), 12)
    engine.add_request(list(range(50, 58)), 12)
    engine.run()
    assert sum(r.preempted for r in log.reports) >= 1
    assert {r.phase for r in log.reports} >= {"prefill", "decode"}
    _assert_hooks_hold(engine.metrics, log.reports)
    # every observer is handed the same report objects, in order
    assert all(a is b for a, b in zip(log.reports, second.reports, strict=True))
    # and the worker's own counters are the same reports, counted
    summary = engine.summary()
    assert summary.steps == len(log.reports)
    assert summary.flops == pytest.approx(sum(r.flops for r in log.reports))
    assert summary.preemptions == sum(r.preempted for r in log.reports)
    assert summary.step_s == pytest.approx(sum(r.duration_s for r in log.reports))


def test_reports_describe_the_steps_the_engine_took() -> None:
    """Per step: the work is what was scheduled (the context grows by one per decode), the
    token counts add up, and the finished request is reported in the step that finished it."""
    log = StepLog()
    engine = _engine(16, log)
    engine.add_request(list(range(1, 7)), 4)
    (done,) = engine.run()
    assert [(r.phase, r.work) for r in log.reports] == [
        ("prefill", (RequestWork(6, 6),)),
        ("decode", (RequestWork(1, 7),)),
        ("decode", (RequestWork(1, 8),)),
        ("decode", (RequestWork(1, 9),)),
    ]
    assert all(r.tokens == sum(w.new_tokens for w in r.work) for r in log.reports)
    assert log.reports[-1].finished == (done,)
    assert (log.reports[-1].running, log.reports[-1].kv_used_blocks) == (0, 0)
    assert (done.output_tokens, len(done.inter_token_s)) == (4, 3)
