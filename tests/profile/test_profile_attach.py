"""Attach mode against an instrumented engine endpoint (gpumetrics.hooks over real HTTP):
exact window arithmetic on a driven clock, an engine that stops answering, and the CLI with
an engine thread recording steps at a known rate."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpumetrics.cli import cli
from gpumetrics.costmodel import PRESETS, RequestWork, step_cost
from gpumetrics.derive import Bound
from gpumetrics.hooks import EngineMetrics, MetricsEndpoint
from gpumetrics.profile.analysis import Roof, Roofs
from gpumetrics.profile.attach import observe, summarize
from gpumetrics.profile.run import attach_report
from gpumetrics.sources.engine import EngineConfig, EngineSource
from gpumetrics.testing import ManualClock

MODEL = PRESETS["tiny"]
BATCH, CONTEXT = 8, 128
WORK = [RequestWork.decode(CONTEXT)] * BATCH
COST = step_cost(MODEL, WORK, dtype="fp32", kv_dtype="fp32")
ROOF = Roof("user", 1e12, 1e11, "test")


def _step(metrics: EngineMetrics) -> None:
    """One decode step of the batch: 10 ms busy, a prefix lookup hitting 60 of 100 tokens."""
    metrics.record_step(
        phase="decode",
        sequences=BATCH,
        prefill_tokens=0,
        decode_tokens=BATCH,
        duration_s=0.01,
        work=WORK,
    )
    metrics.record_prefix_lookup(queried_tokens=100, hit_tokens=60)
    metrics.record_kv(used_blocks=30, total_blocks=100)


@pytest.fixture
def engine() -> Iterator[tuple[EngineMetrics, MetricsEndpoint]]:
    metrics = EngineMetrics("e0", "tiny", model_spec=MODEL, dtype="fp32", kv_dtype="fp32")
    endpoint = metrics.serve()
    yield metrics, endpoint
    endpoint.close()


def test_window_rates_and_ratios_are_exact(engine: tuple[EngineMetrics, MetricsEndpoint]) -> None:
    metrics, endpoint = engine
    clock = ManualClock(100.0)
    steps_per_second = 50

    def sleep(seconds: float) -> None:  # the engine works while the observer waits
        for _ in range(round(steps_per_second * seconds)):
            _step(metrics)
        clock.advance(seconds)

    _step(metrics)  # history before the window must not count
    source = EngineSource(EngineConfig("e0", endpoint.url))
    observation = observe(source, 3.0, interval=1.0, clock=clock, wall=clock, sleep=sleep)
    assert len(observation.scrapes) == 4
    assert observation.failures == ()
    s = summarize(observation, ROOF, gpus=2)
    assert s.window_seconds == 3.0
    assert s.kind == "gpumetrics"
    assert s.model == "tiny"
    assert s.tokens_per_second == pytest.approx(steps_per_second * BATCH)
    assert s.decode_tokens_per_second == pytest.approx(steps_per_second * BATCH)
    assert s.prefill_tokens_per_second == 0
    assert s.steps_per_second == pytest.approx(steps_per_second)
    assert s.mean_batch == pytest.approx(BATCH)
    assert s.hit_ratio == pytest.approx(0.6)
    assert s.kv_usage == pytest.approx(0.3)
    assert s.busy_ratio == pytest.approx(0.5)
    assert s.flops_per_second == pytest.approx(steps_per_second * COST.flops)
    assert s.bytes_per_second == pytest.approx(steps_per_second * COST.bytes)
    assert s.intensity == pytest.approx(COST.arithmetic_intensity)
    assert s.mfu == pytest.approx(steps_per_second * COST.flops / (2 * ROOF.peak_flops))
    assert s.mbu == pytest.approx(steps_per_second * COST.bytes / (2 * ROOF.bandwidth))
    assert s.bound is Bound.MEMORY
    assert s.complete


def test_an_engine_that_stops_answering_keeps_what_was_gathered(
    engine: tuple[EngineMetrics, MetricsEndpoint],
) -> None:
    metrics, endpoint = engine
    clock = ManualClock(0.0)
    waits = 0

    def sleep(seconds: float) -> None:
        nonlocal waits
        waits += 1
        for _ in range(10):
            _step(metrics)
        if waits == 2:
            endpoint.close()  # the engine goes away after the second interval
        clock.advance(seconds)

    source = EngineSource(EngineConfig("e0", endpoint.url, timeout_s=0.5))
    observation = observe(source, 4.0, interval=1.0, clock=clock, wall=clock, sleep=sleep)
    assert len(observation.scrapes) == 2
    assert [at for at, _ in observation.failures] == [2.0, 3.0, 4.0]
    report = attach_report(
        observation,
        url=endpoint.url,
        kind="auto",
        gpus=(),
        roofs=Roofs(ROOF),
        gpu_counters="not available: test",
        gpu_counters_available=False,
    )
    assert report.attach is not None
    summary = report.attach.summary
    assert summary.window_seconds == 1.0
    assert summary.tokens_per_second == pytest.approx(10 * BATCH)
    assert not summary.complete
    assert any("3 scrape(s) failed (first 2.0 s in" in line for line in report.verdict)


def test_cli_attaches_to_an_engine_stepping_at_a_known_rate(
    engine: tuple[EngineMetrics, MetricsEndpoint], tmp_path: Path
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from gpumetrics.profile.schema import JSON_SCHEMA  # noqa: PLC0415

    metrics, endpoint = engine
    stop = threading.Event()
    period = 0.01  # 100 steps/s of 8 tokens: about 800 tokens/s

    def loop() -> None:
        while not stop.is_set():
            _step(metrics)
            time.sleep(period)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    path = tmp_path / "attach.json"
    html = tmp_path / "attach.html"
    try:
        result = CliRunner().invoke(
            cli,
            ["profile", "--engine", endpoint.url, "--duration", "1.2", "--interval", "0.4",
             "--gpu", "h200", "--gpus", "0", "--json", str(path), "--html", str(html)],
        )  # fmt: skip
    finally:
        stop.set()
        thread.join()
    assert result.exit_code == 0, result.output
    report = json.loads(path.read_text())
    jsonschema.validate(report, JSON_SCHEMA)
    a = report["attach"]
    assert report["mode"] == "attach"
    assert a["detected_kind"] == "gpumetrics"
    assert a["scrapes"] == 4
    assert a["complete"] is True
    # The ratios are exact whatever the scheduling jitter; the rate is only roughly known.
    assert a["mean_batch"] == pytest.approx(BATCH)
    assert a["hit_ratio"] == pytest.approx(0.6)
    assert a["arithmetic_intensity"] == pytest.approx(COST.arithmetic_intensity)
    assert 0.25 * BATCH / period < a["tokens_per_second"] < 1.2 * BATCH / period
    assert a["bound"] == "memory"
    assert report["roofs"]["reference"]["kind"] == "datasheet"
    assert a["mfu"] == pytest.approx(a["flops_per_second"] / 989.4e12)
    assert "memory-bound" in result.stdout
    assert "data:image/png;base64," in html.read_text()


def test_cli_with_an_engine_that_does_not_answer(tmp_path: Path) -> None:
    path = tmp_path / "dead.json"
    result = CliRunner().invoke(
        cli, ["profile", "--engine", "http://127.0.0.1:9/metrics", "--duration", "5",
              "--json", str(path)],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "No window to summarise: http://127.0.0.1:9/metrics gave 0 scrape(s)" in result.output
    report = json.loads(path.read_text())
    assert report["attach"]["scrapes"] == 0
    assert report["attach"]["failures"][0]["message"]
