"""Issue 7 end to end: real Prometheus + Alertmanager + a webhook receiver, `gpumetrics serve
--fake-gpus` and the reference worker on CPU. The worker first serves a chat load from a large
KV pool (a steady, low miss ratio), then restarts with a tiny pool and a burst of new
conversations: the KV-cache miss-spike alert must reach the webhook, and every dashboard query
must return series.

Time is compressed: the generated rules are loaded with their windows scaled (5m -> 10s,
1h -> 60s, `for: 5m` -> 5s, ...; `compress()` below) so the scenario runs in about two
minutes. The expressions are otherwise the generated ones; the promtool unit tests in
alerts/tests/ check the real windows.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .servers import alertmanager, free_port, prometheus, wait_for
from .sidecar import gpumetrics_serve

pytest.importorskip("torch")
pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
_WINDOWS = {"1m": "5s", "5m": "10s", "10m": "20s", "15m": "30s", "1h": "60s"}
_FOR = {"1m": "2s", "5m": "5s", "10m": "10s", "15m": "15s"}
#: Dashboard template variables for the live queries: everything selected.
_VARIABLES = {"$__rate_interval": "10s", "$__range": "60s", "$dtype": "bf16"}
#: Dashboard queries with nothing to show in this scenario, and why.
_NO_DATA_EXPECTED = {
    "gpumetrics_gpu_xid_errors_total": "no XID error happens in the scenario",
    "gpumetrics_ib_port_congestion_events_total": "the fake fabric is InfiniBand, not RoCE",
    "gpumetrics_gpu_process_memory_bytes": "no processes on fake GPUs",
    "gpumetrics_gpu_nvlink_link_data_bytes_total": "per-link series need --nvlink-per-link",
    "gpumetrics_gpu_nvlink_link_errors_total": "per-link series need --nvlink-per-link",
    "gpumetrics_mig_": "no MIG-enabled GPU in the scenario",
    "gpumetrics_engine_kv_block_lifetime_seconds": "vLLM's sampled residency, not the worker's",
    "gpumetrics_engine_kv_block_idle_before_eviction_seconds": "vLLM's sampled residency only",
    "gpumetrics_engine_kv_block_reuse_gap_seconds": "vLLM's sampled residency only",
    "gpumetrics:pod_": "no pod attribution (serve --pod-attribution) in the scenario",
    "gpumetrics_gpu_pod_": "no pod attribution (serve --pod-attribution) in the scenario",
    "gpumetrics:spec_decode_acceptance_ratio": "the reference worker does not speculate",
    "gpumetrics:external_kv_cache_hit_ratio": "the reference worker has no external KV cache",
}


def compress(rules: str) -> str:
    """Scale the rule windows, offsets and `for:` durations (see the module docstring)."""
    rules = re.sub(r"\[(\d+[mh])\]", lambda m: f"[{_WINDOWS[m.group(1)]}]", rules)
    rules = re.sub(r"offset (\d+[mh])", lambda m: f"offset {_WINDOWS[m.group(1)]}", rules)
    return re.sub(r"for: (\d+m)", lambda m: f"for: {_FOR[m.group(1)]}", rules)


@contextmanager
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


_WORKER = [sys.executable, "-m", "gpumetrics", "worker", "--device", "cpu", "--model", "tiny"]


def start_worker(tmp: Path, port: int, *args: str) -> subprocess.Popen[bytes]:
    log = (tmp / f"worker-{len(list(tmp.glob('worker-*')))}.log").open("wb")
    command = [*_WORKER, "--serve", f"127.0.0.1:{port}", "--seed", "1", *args]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


@contextmanager
def worker(tmp: Path, port: int, *args: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The worker process, in a list so that the test can replace it mid-run."""
    processes = [start_worker(tmp, port, *args)]
    try:
        yield processes
    finally:
        for process in processes:
            process.terminate()
            process.wait(20)


def _dashboard_queries() -> dict[str, str]:
    queries: dict[str, str] = {}

    def walk(node: object, title: str) -> None:
        if isinstance(node, dict):
            title = str(node.get("title", title))
            expr = node.get("expr")
            if isinstance(expr, str):
                queries[f"{title}: {expr}"] = expr
            for value in node.values():
                walk(value, title)
        elif isinstance(node, list):
            for value in node:
                walk(value, title)

    for path in sorted((REPO / "dashboards").glob("*.json")):
        walk(json.loads(path.read_text()), path.stem)
    return queries


def _live(expr: str) -> str:
    for name, value in _VARIABLES.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$\{?[a-z_]+\}?", ".*", expr)


def test_miss_spike_reaches_the_webhook_and_dashboards_have_data(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    rule_files = []
    for path in sorted((REPO / "alerts").glob("*.yml")):
        target = rules_dir / path.name
        target.write_text(compress(path.read_text()))
        rule_files.append(target)
    engine_port = free_port()
    engine = f"worker=http://127.0.0.1:{engine_port}/metrics,kind=gpumetrics,gpus=0"
    with (
        webhook() as (hook_url, notifications),
        alertmanager(tmp_path / "am", hook_url) as manager,
        worker(
            tmp_path, engine_port, "--kv-blocks", "2048", "--arrival-rate", "2", "--duration", "600"
        ) as workers,
        gpumetrics_serve(
            tmp_path,
            "--fake-gpus",
            "h200x2",
            "--fake-ib",
            "1",
            "--engine",
            engine,
            "--interval",
            "1",
        ) as port,
        prometheus(
            tmp_path / "prom",
            [f"127.0.0.1:{port}"],
            rule_files=rule_files,
            alertmanager=manager.address,
            target_labels={"cluster": "test", "region": "local"},
        ) as prom,
    ):
        # Baseline: a full compressed hour (60 s) of the large pool's miss ratio.
        wait_for(
            lambda: prom.query("count_over_time(gpumetrics:kv_cache_miss_ratio:rate1h[75s]) >= 70"),
            150,
            "75 s of baseline",
        )
        baseline = float(prom.query("gpumetrics:kv_cache_miss_ratio:rate1h")[0]["value"][1])
        assert not prom.alerts()  # nothing pages on a healthy engine
        # The spike: the engine restarts with a tiny pool and a burst of new conversations.
        workers[0].terminate()
        workers[0].wait(20)
        workers.append(
            start_worker(
                tmp_path,
                engine_port,
                "--kv-blocks",
                "16",
                "--arrival-rate",
                "8",
                "--think-time",
                "0.5",
                "--duration",
                "600",
            )
        )

        def fired() -> bool:
            return any(
                alert["labels"]["alertname"] == "KVCacheMissRatioSpike"
                for note in notifications
                for alert in note["alerts"]
            )

        try:
            wait_for(fired, 90, "KVCacheMissRatioSpike at the webhook")
        except AssertionError:
            for expr in (
                "gpumetrics:kv_cache_miss_ratio:rate5m",
                "gpumetrics:kv_cache_miss_ratio:rate1h offset 10s",
                "gpumetrics:prefix_cache_queried_tokens:rate5m",
                "ALERTS",
            ):
                print(expr, prom.query(expr))
            raise
        spike = float(prom.query("gpumetrics:kv_cache_miss_ratio:rate5m")[0]["value"][1])
        in_manager = [
            a for a in manager.alerts() if a["labels"]["alertname"] == "KVCacheMissRatioSpike"
        ]
        empty = {
            title: expr
            for title, expr in _dashboard_queries().items()
            if not prom.query(_live(expr))
        }
    assert spike > baseline + 0.2
    assert in_manager
    assert in_manager[0]["labels"]["engine"] == "worker"
    assert in_manager[0]["annotations"]["runbook_url"].endswith("KVCacheMissRatioSpike.md")
    unexplained = {
        title: expr
        for title, expr in empty.items()
        if not any(metric in expr for metric in _NO_DATA_EXPECTED)
    }
    assert unexplained == {}, "\n".join(unexplained)
