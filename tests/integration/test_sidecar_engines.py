"""End to end for issue 4: FakeNvml + an instrumented synthetic engine (gpumetrics.hooks) + a
vLLM-format endpoint, read by `gpumetrics serve`, scraped by a real Prometheus with the
generated recording rules: PromQL returns each engine's KV hit ratio and tokens/s."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gpumetrics import catalog
from gpumetrics.hooks import EngineMetrics, serve

from .servers import prometheus, wait_for
from .sidecar import gpumetrics_serve

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HIT, QUERIED = catalog.engine.PREFIX_HIT.name, catalog.engine.PREFIX_QUERIED.name
TOKENS = catalog.engine.GENERATED_TOKENS.name

# The synthetic engine: every 50 ms a decode step of 16 sequences and a prefix lookup of
# 100 tokens of which 75 hit; each step finishes one request of 16 output tokens.
HOOKS_HIT_RATIO = 0.75
# The vLLM-format engine's counters grow linearly with time.
VLLM_QUERIES_PER_S, VLLM_HITS_PER_S, VLLM_TOKENS_PER_S = 1000.0, 400.0, 500.0


@contextmanager
def synthetic_engine() -> Iterator[tuple[str, EngineMetrics]]:
    metrics = EngineMetrics("synthetic", "tiny", max_batch_sequences=64)
    endpoint = serve(metrics)
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.05):
            metrics.record_step(
                phase="decode",
                sequences=16,
                prefill_tokens=0,
                decode_tokens=16,
                duration_s=0.01,
                flops=1e9,
                read_bytes=1e8,
                write_bytes=1e6,
            )
            metrics.record_prefix_lookup(queried_tokens=100, hit_tokens=75)
            metrics.record_request_finished(
                ttft_s=0.05,
                inter_token_s=[0.01] * 15,
                e2e_s=0.2,
                prompt_tokens=100,
                cached_tokens=75,
                output_tokens=16,
            )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield endpoint.url, metrics
    finally:
        stop.set()
        thread.join(5)
        endpoint.close()


@contextmanager
def vllm_engine() -> Iterator[str]:
    start = time.time()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            t = time.time() - start
            labels = 'engine="0",model_name="meta-llama/Llama-3.1-8B"'
            body = (
                "# TYPE vllm:prefix_cache_queries counter\n"
                f"vllm:prefix_cache_queries_total{{{labels}}} {VLLM_QUERIES_PER_S * t}\n"
                "# TYPE vllm:prefix_cache_hits counter\n"
                f"vllm:prefix_cache_hits_total{{{labels}}} {VLLM_HITS_PER_S * t}\n"
                "# TYPE vllm:generation_tokens counter\n"
                f"vllm:generation_tokens_total{{{labels}}} {VLLM_TOKENS_PER_S * t}\n"
                "# TYPE vllm:num_requests_running gauge\n"
                f"vllm:num_requests_running{{{labels}}} 12.0\n"
                "# TYPE vllm:kv_cache_usage_perc gauge\n"
                f"vllm:kv_cache_usage_perc{{{labels}}} 0.42\n"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def _by_engine(result: list[dict[str, object]]) -> dict[str, float]:
    out = {}
    for item in result:
        metric, value = item["metric"], item["value"]
        assert isinstance(metric, dict)
        assert isinstance(value, list)
        out[str(metric["engine"])] = float(value[1])
    return out


def test_prometheus_gets_hit_ratios_and_token_rates(tmp_path: Path) -> None:
    rules = [REPO / "alerts" / "gpumetrics-recording-rules.yml"]
    with (
        synthetic_engine() as (hooks_url, metrics),
        vllm_engine() as vllm_url,
        gpumetrics_serve(
            tmp_path,
            "--fake-gpus",
            "h200x2",
            "--no-infiniband",
            "--interval",
            "0.5",
            "--engine",
            f"synthetic={hooks_url},kind=gpumetrics,gpus=0",
            "--engine",
            f"vllm-0={vllm_url},kind=vllm,gpus=1",
        ) as port,
        prometheus(tmp_path / "prom", [f"127.0.0.1:{port}"], rule_files=rules) as prom,
    ):
        wait_for(prom.targets_up, 60, "scrape target up")
        full = f"count_over_time({HIT}[15s]) >= 13"
        wait_for(lambda: len(prom.query(full)) == 2, 90, "15 s of samples for both engines")
        ratio = _by_engine(prom.query(f"rate({HIT}[10s]) / rate({QUERIED}[10s])"))
        recorded = wait_for(
            lambda: _by_engine(prom.query("gpumetrics:kv_cache_hit_ratio:rate5m")),
            30,
            "the recording rule",
        )
        tokens = _by_engine(prom.query(f"rate({TOKENS}[10s])"))
        up = _by_engine(prom.query('gpumetrics_engine_info{kind=~"gpumetrics|vllm"}'))
        sidecar_errors = prom.query("sum(gpumetrics_source_errors_total)")
    expected = {"synthetic": HOOKS_HIT_RATIO, "vllm-0": VLLM_HITS_PER_S / VLLM_QUERIES_PER_S}
    # Hit and query counters move together, so their ratio is exact whatever the timing.
    assert ratio == pytest.approx(expected, rel=1e-6)
    assert recorded == pytest.approx(expected, rel=1e-6)
    # Token rates depend on wall time: the synthetic engine paces itself with sleeps.
    assert tokens["vllm-0"] == pytest.approx(VLLM_TOKENS_PER_S, rel=0.05)
    assert 0.5 * 320.0 < tokens["synthetic"] <= 320.0 * 1.05  # 16 tokens / 50 ms at most
    assert set(up) == {"synthetic", "vllm-0"}
    assert metrics.hook_errors == 0
    assert sidecar_errors == [] or float(sidecar_errors[0]["value"][1]) == 0.0
