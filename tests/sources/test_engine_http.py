"""EngineSource over real HTTP: a stdlib server on 127.0.0.1 plays the engine.

Bounded reads (size, total time), typed error codes, the Sampler marking only this source
down, and an engine restart with reset counters.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gpumetrics.catalog import engine as e
from gpumetrics.catalog import health as selfmetrics
from gpumetrics.hooks import EngineMetrics
from gpumetrics.pipeline import Sampler
from gpumetrics.samples import Collection
from gpumetrics.sources.engine import EngineConfig, EngineError, EngineSource
from gpumetrics.testing.sample_values import metric_values

DATA = Path(__file__).resolve().parent.parent / "data" / "engines"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
MB = 1_000_000
CHUNK = b"# padding padding padding padding padding padding padding padding\n" * 1024


class _Handler(BaseHTTPRequestHandler):
    """Routes: /metrics (the engine's body), /huge, /huge-announced, /hang, /drip, /short,
    /status/<code>."""

    server: _EngineServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        return

    def do_GET(self) -> None:
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up, as it should
            return

    def _route(self) -> None:
        path = self.path
        if path == "/metrics":
            self._send(200, self.server.body)
        elif path.startswith("/status/"):
            self._send(int(path.removeprefix("/status/")), b"overloaded\n")
        elif path in ("/huge", "/huge-announced"):
            self.send_response(200)
            if path == "/huge-announced":
                self.send_header("Content-Length", str(50 * MB))
            self.end_headers()  # no length: HTTP/1.0, the body ends when the server closes
            sent = 0
            while sent < 50 * MB and not self.server.release.is_set():
                self.wfile.write(CHUNK)  # streamed: 50 MB never sits in memory at once
                sent += len(CHUNK)
        elif path == "/hang":
            self.server.release.wait(10)
            self._send(200, self.server.body)
        elif path == "/drip":  # each byte well within the socket timeout, the whole far over
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                if self.server.release.wait(0.05):
                    return
                self.wfile.write(b"#")
                self.wfile.flush()
        elif path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(self.server.body[:100])
        else:
            self._send(404, b"not found\n")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _EngineServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, body: bytes) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.body = body
        self.release = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str = "/metrics") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()
        self._thread.join(5)


def _fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture
def engine() -> Iterator[_EngineServer]:
    server = _EngineServer(0, _fixture("vllm_v1.txt"))
    yield server
    server.stop()


def _source(url: str, timeout_s: float = 2.0) -> EngineSource:
    return EngineSource(EngineConfig("llama-a", url, timeout_s=timeout_s))


def _code(source: EngineSource) -> str:
    with pytest.raises(EngineError) as caught:
        source.collect(0.0)
    return caught.value.code


def _running(collection: Collection) -> float:
    for sample in collection.samples:
        if sample.metric == e.RUNNING_SEQUENCES.name:
            assert isinstance(sample.value, float)
            return sample.value
    raise AssertionError("no running_sequences sample")


def test_a_fixture_served_over_http_maps_to_catalog_samples(engine: _EngineServer) -> None:
    source = _source(engine.url())
    assert source.name == "engine:llama-a"
    collection = source.collect(0.0)
    assert collection.errors == ()
    assert _running(collection) == 22.0
    source.close()


def test_the_path_defaults_to_metrics(engine: _EngineServer) -> None:
    assert _running(_source(f"http://127.0.0.1:{engine.port}").collect(0.0)) == 22.0


@pytest.mark.parametrize(
    "body",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00garbage\n",
        b'vllm:num_requests_running{model_name="m"} 1\nvllm:num_requests_waiting{model_na',
        b"<html><body>Service Unavailable</body></html>\n",
    ],
)
def test_garbage_or_truncated_exposition_is_parse(engine: _EngineServer, body: bytes) -> None:
    engine.body = body
    assert _code(_source(engine.url())) == "parse"


def test_a_body_shorter_than_its_content_length_is_parse(engine: _EngineServer) -> None:
    assert _code(_source(engine.url("/short"))) == "parse"


def test_a_50_mb_stream_is_cut_off_as_too_large(engine: _EngineServer) -> None:
    assert _code(_source(engine.url("/huge"))) == "too_large"  # default limit: 16 MiB


def test_a_50_mb_content_length_is_refused_before_reading(engine: _EngineServer) -> None:
    assert _code(_source(engine.url("/huge-announced"))) == "too_large"


def test_a_hanging_engine_times_out_within_bounds(engine: _EngineServer) -> None:
    source = _source(engine.url("/hang"), timeout_s=0.3)
    started = time.monotonic()
    assert _code(source) == "timeout"
    assert time.monotonic() - started < 5  # far below the 10 s the engine would hang


def test_an_engine_that_trickles_bytes_hits_the_total_deadline(engine: _EngineServer) -> None:
    source = _source(engine.url("/drip"), timeout_s=0.3)
    started = time.monotonic()
    assert _code(source) == "timeout"
    assert time.monotonic() - started < 5  # the whole body would take 50 s


def test_http_errors_carry_the_status(engine: _EngineServer) -> None:
    assert _code(_source(engine.url("/status/503"))) == "http_503"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_engine_that_is_down_is_connection_refused() -> None:
    assert _code(_source(f"http://127.0.0.1:{_free_port()}/metrics")) == "connection_refused"


class _Steady:
    """Another source that always works: the engine failing must not touch it."""

    name = "steady"

    def collect(self, now: float) -> Collection:
        return Collection((selfmetrics.BUILD_INFO.sample(1.0, "x"),))

    def close(self) -> None:
        return


def _status(sampler: Sampler, name: str) -> tuple[bool, str | None]:
    for status in sampler.snapshot().statuses:
        if status.source == name:
            return status.up, status.error
    raise AssertionError(f"no status for {name}")


def _engine_values(sampler: Sampler) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (s.metric, s.labels): s.value
        for s in sampler.snapshot().samples
        if s.metric.startswith("gpumetrics_engine_") and isinstance(s.value, float)
    }


def test_a_hanging_engine_marks_only_its_source_down(engine: _EngineServer) -> None:
    sampler = Sampler([_source(engine.url("/hang"), timeout_s=0.3), _Steady()])
    sampler.sample_once()
    up, error = _status(sampler, "engine:llama-a")
    assert not up
    assert error is not None
    assert error.startswith("timeout")
    assert _status(sampler, "steady") == (True, None)
    assert _engine_values(sampler) == {}


def test_a_restarted_engine_with_reset_counters_exports_the_new_values() -> None:
    first = _EngineServer(0, _fixture("vllm_v1.txt"))
    port = first.port
    sampler = Sampler([_source(first.url()), _Steady()])
    eng = ("llama-a", LLAMA)
    try:
        sampler.sample_once()
        before = _engine_values(sampler)
        assert before[(e.PROMPT_TOKENS.name, eng)] == 2_300_000.0
        assert before[(e.KV_CAPACITY_BLOCKS.name, eng)] == 60_000.0
    finally:
        first.stop()

    sampler.sample_once()  # the engine is gone: its source is down, its samples dropped
    up, error = _status(sampler, "engine:llama-a")
    assert not up
    assert error is not None
    assert error.startswith("connection_refused")
    assert _engine_values(sampler) == {}
    assert _status(sampler, "steady") == (True, None)

    restarted = (
        _fixture("vllm_v1.txt")
        .replace(b"1250000.0", b"1250.0")  # engine="0" prompt tokens start over
        .replace(b"1050000.0", b"1050.0")
        .replace(b'num_gpu_blocks="30000"', b'num_gpu_blocks="None"')  # not sized yet
    )
    second = _EngineServer(port, restarted)
    try:
        sampler.sample_once()
        after = _engine_values(sampler)
    finally:
        second.stop()
    assert _status(sampler, "engine:llama-a") == (True, None)
    assert after[(e.PROMPT_TOKENS.name, eng)] == 2_300.0  # the new raw values, not a mix
    assert (e.KV_CAPACITY_BLOCKS.name, eng) not in after  # nothing carried over
    assert after[(e.GENERATED_TOKENS.name, eng)] == 600_000.0


def test_the_predicted_hit_ratio_passes_the_bridge_from_a_hooks_endpoint() -> None:
    """`serve --engine` scraping a worker's hooks: the ghost cache's predicted hit ratios
    arrive with their capacity_factor label, values as the hooks computed them. By hand: a
    pool of 2 blocks (ghosts of 1, 4 and 8 blocks at sample rate 1), requests [1, 2] then
    [1, 2]: at 1 block the second finds block 1 (touched last, most recent): 1 of 4 blocks
    hit; at 4 and 8 blocks both hit: 2 of 4."""
    metrics = EngineMetrics(
        "w", "tiny", kv_block_size=1, kv_capacity_blocks=2, kv_predict_sample_rate=1.0
    )
    for _ in range(2):
        metrics.record_prefix_lookup(queried_tokens=2, hit_tokens=0, block_hashes=[1, 2])
    with metrics.serve() as endpoint:
        source = EngineSource(EngineConfig("w", endpoint.url))
        try:
            got = metric_values(source.collect(1000.0).samples, e.KV_PREDICTED_HIT_RATIO.name)
        finally:
            source.close()
    assert got == {
        ("w", "tiny", "0.5"): 0.25,
        ("w", "tiny", "2"): 0.5,
        ("w", "tiny", "4"): 0.5,
    }
