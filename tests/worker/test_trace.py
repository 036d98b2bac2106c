"""The worker's prefix trace and live MRC against independent oracles, on a seeded
virtual-clock chat load with a KV pool small enough to evict and preempt:

* the recorded trace replayed through the worker's own Scheduler and BlockManager
  (`replay_trace`) reproduces the prefix hit tokens the hooks measured, exactly;
* `kv-size`'s exact LRU curve of that trace at the worker's pool size is within 0.02 of the
  worker's measured block hit ratio (docs/kv-size.md says why they differ at all);
* the live ghost cache's predicted hit ratio at twice the pool (sample rate 1) is within 0.03
  of rerunning the same load with twice the blocks;
* `gpumetrics kv-size` auto-detects and reads the file `worker --record-trace` wrote.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'")

from click.testing import CliRunner

from gpumetrics.catalog import engine as cat
from gpumetrics.cli import cli
from gpumetrics.costmodel import PRESETS
from gpumetrics.kvsize import ReadReport, concat, exact_curve, read_trace
from gpumetrics.worker import SCENARIOS, ByteTokenizer, ChatLoad, Engine, EngineConfig, run_load
from gpumetrics.worker.loadgen import DEFAULT_VIRTUAL_STEP_S, VirtualClock
from gpumetrics.worker.observer import StepLog
from gpumetrics.worker.trace import TraceRecorder, replay_trace

SPEC = PRESETS["tiny"]
BLOCKS, BLOCK_SIZE, MAX_BATCH, MAX_BATCH_TOKENS = 64, 16, 8, 256
SCENARIO = replace(SCENARIOS["chat"], arrival_rate=20.0, think_time_s=0.5, seed=1)
TURNS = 80


def _run(blocks: int) -> tuple[Engine, StepLog, str]:
    """The seeded load on a pool of `blocks` blocks: the engine, its step reports and the
    trace it recorded."""
    config = EngineConfig(
        SPEC,
        kv_blocks=blocks,
        block_size=BLOCK_SIZE,
        max_batch=MAX_BATCH,
        max_batch_tokens=MAX_BATCH_TOKENS,
    )
    log = StepLog()
    engine = Engine(config, observers=[log])
    load = ChatLoad(SCENARIO, ByteTokenizer(SPEC.vocab), max_context=64 * BLOCK_SIZE)
    sink = io.StringIO()
    run_load(
        engine,
        load,
        requests=TURNS,
        virtual=VirtualClock(),
        recorder=TraceRecorder(sink, BLOCK_SIZE),
    )
    return engine, log, sink.getvalue()


def _block_hit_ratio(log: StepLog) -> float:
    """Blocks hit at each request's first lookup / its prompt's full blocks."""
    queried = hit = 0
    for report in log.reports:
        for match, hashes in zip(report.lookups, report.lookup_hashes, strict=True):
            if hashes is not None:
                queried += len(hashes)
                hit += len(match.block_ids)
    return hit / queried


@pytest.fixture(scope="module")
def recorded() -> tuple[Engine, StepLog, str]:
    return _run(BLOCKS)


def _measured(engine: Engine, name: str) -> dict[tuple[str, ...], float]:
    return {
        s.labels[2:]: float(s.value)  # type: ignore[arg-type]
        for s in engine.metrics.snapshot()
        if s.metric == name
    }


def test_the_trace_is_one_line_per_request_with_the_workers_block_hashes(
    recorded: tuple[Engine, StepLog, str],
) -> None:
    _, log, text = recorded
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) == TURNS
    # each request's first lookup carried the hashes its trace line holds
    first = [h for r in log.reports for h in r.lookup_hashes if h is not None]
    assert sorted(first) == sorted(tuple(r["hash_ids"]) for r in records)
    for r in records:
        assert len(r["hash_ids"]) == r["input_length"] // BLOCK_SIZE
        assert r["block_size"] == BLOCK_SIZE
        assert isinstance(r["conversation"], int)
    times = [r["timestamp"] for r in records]
    assert times == sorted(times)
    assert times[-1] > 0


def test_replaying_the_trace_through_the_block_manager_reproduces_the_hits(
    recorded: tuple[Engine, StepLog, str],
) -> None:
    engine, log, text = recorded
    records = [json.loads(line) for line in text.splitlines()]
    result = replay_trace(
        records,
        kv_blocks=BLOCKS,
        max_batch=MAX_BATCH,
        max_batch_tokens=MAX_BATCH_TOKENS,
        step_s=DEFAULT_VIRTUAL_STEP_S,
    )
    measured_hit = _measured(engine, cat.PREFIX_HIT.name)[()]
    measured_queried = _measured(engine, cat.PREFIX_QUERIED.name)[()]
    assert result.evicted_blocks > 0
    assert result.preemptions > 0
    assert (result.hit_tokens, result.queried_tokens) == (measured_hit, measured_queried)
    assert result.block_hit_ratio == _block_hit_ratio(log)
    assert result.evicted_blocks == _measured(engine, cat.KV_EVICTED_BLOCKS.name)[()]


def test_the_lru_model_at_the_pool_size_is_within_002_of_the_worker(
    recorded: tuple[Engine, StepLog, str], tmp_path: Path
) -> None:
    _, log, text = recorded
    path = tmp_path / "trace.jsonl"
    path.write_text(text)
    report = ReadReport(str(path))
    curve = exact_curve(concat(read_trace(path, report)))
    assert report.format == "gpumetrics"
    model = float(curve.hit_ratio([BLOCKS])[0])
    assert abs(model - _block_hit_ratio(log)) <= 0.02, (model, _block_hit_ratio(log))


def test_the_live_prediction_at_twice_the_pool_matches_a_rerun_with_twice_the_blocks(
    recorded: tuple[Engine, StepLog, str],
) -> None:
    engine, _, text = recorded
    ghost = engine.metrics.ghost
    assert ghost is not None
    assert ghost.rate == 1.0
    predicted = _measured(engine, cat.KV_PREDICTED_HIT_RATIO.name)
    assert set(predicted) == {("0.5",), ("2",), ("4",)}
    _, log2, _ = _run(2 * BLOCKS)
    assert abs(predicted[("2",)] - _block_hit_ratio(log2)) <= 0.03
    # the ghost at 2x equals the exact LRU curve at 2x of the same trace (sample rate 1)
    records = [json.loads(line) for line in text.splitlines()]
    queried = sum(len(r["hash_ids"]) for r in records)
    assert ghost.lookups == queried
    assert predicted[("0.5",)] <= predicted[("2",)] <= predicted[("4",)]


def test_kv_size_reads_what_the_worker_recorded(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    args = ["worker", "--model", "tiny", "--kv-blocks", "32", "--requests", "12",
            "--virtual-clock", "--record-trace", str(path), "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert len(path.read_text().splitlines()) == 12
    for fmt in ("gpumetrics", "auto"):
        out = CliRunner().invoke(
            cli, ["kv-size", "--trace", str(path), "--format", fmt, "--capacity", "32", "--json"]
        )
        assert out.exit_code == 0, out.output
        rows = json.loads(out.output)["rows"]
        row = next(r for r in rows if r["capacity_blocks"] == 32)  # (and the --target row)
        assert 0.0 <= row["hit_ratio"] <= row["max_hit_ratio"] <= 1.0


def test_an_unwritable_trace_path_is_a_one_line_error(tmp_path: Path) -> None:
    args = ["worker", "--model", "tiny", "--requests", "1", "--virtual-clock",
            "--record-trace", str(tmp_path / "no" / "such" / "dir.jsonl")]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "--record-trace" in result.output
