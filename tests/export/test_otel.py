"""OtelExporter on the wire: the real OTLP/HTTP exporter posts to a receiver on 127.0.0.1 that
decodes ExportMetricsServiceRequest, so the bytes a collector would get are what we check."""

from __future__ import annotations

import gzip
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.metrics import get_meter_provider
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric

from gpumetrics import catalog
from gpumetrics.derive import DerivedGauges
from gpumetrics.export.otel import OtelExporter
from gpumetrics.samples import HistogramValue, Snapshot

G, E = catalog.gpu, catalog.engine
GPU = ("0", "GPU-abc", "NVIDIA H200")
ENGINE = ("vllm-0", "llama")
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
DEADLINE_S = 30.0

#: Cumulative counts per TTFT bound (<= 0.005 ... <= 80 s), 11 observations in all.
TTFT_CUMULATIVE = (0, 1, 1, 3, 5, 5, 8, 8, 9, 9, 9, 9, 10, 10)
TTFT_PER_BUCKET = [0, 1, 0, 2, 2, 0, 3, 0, 1, 0, 0, 0, 1, 0, 1]


# --- the receiver -----------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    request: ExportMetricsServiceRequest


class OtlpReceiver:
    """A minimal OTLP/HTTP metrics endpoint: POST /v1/metrics, protobuf, optional gzip."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int) -> list[Received]:
        """The first `count` requests, polling up to a generous deadline."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} OTLP requests, got {len(self.received)}")

    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/v1/metrics":
                    self._reply(404, b"")
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportMetricsServiceRequest()
                request.ParseFromString(body)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver._record(Received(self.path, headers, request))
                self._reply(200, ExportMetricsServiceResponse().SerializeToString())

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    server.start()
    yield server
    server.stop()


# --- helpers ----------------------------------------------------------------------------


def _metrics(request: ExportMetricsServiceRequest) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                assert metric.name not in out, f"{metric.name} sent twice in one request"
                out[metric.name] = metric
    return out


def _attrs(pairs: Iterator[KeyValue] | list[KeyValue]) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in pairs}


def _ttft(cumulative: tuple[int, ...], total: int, total_sum: float) -> HistogramValue:
    return HistogramValue(E.TTFT.buckets, tuple(map(float, cumulative)), total_sum, total)


def _snapshot(power: float = 512.25, energy: float = 1.5e6, hits: float = 1234.0) -> Snapshot:
    return Snapshot(
        taken_at=1.0,
        samples=(
            G.GPU_POWER.sample(power, *GPU),
            G.GPU_ENERGY.sample(energy, *GPU),
            G.GPU_MEMORY_USED.sample(4.0e10, *GPU),
            G.GPU_TEMPERATURE.sample(61.0, *GPU, "memory"),
            G.GPU_PCIE_BYTES.sample(1.0e9, *GPU, "tx"),
            G.GPU_INFO.sample(1, *GPU, "0000:01:00.0", "580.1", "13.0", ""),
            G.NVLINK_LINK_DATA_BYTES.sample(4096.0, *GPU, "3", "tx"),
            G.NVLINK_LINK_DATA_BYTES.sample(8192.0, *GPU, "3", "rx"),
            E.ENGINE_INFO.sample(1, *ENGINE, "vllm"),
            E.KV_USAGE.sample(0.42, *ENGINE),
            E.PREFIX_HIT.sample(hits, *ENGINE),
            E.TTFT.sample(_ttft(TTFT_CUMULATIVE, 11, 7.5), *ENGINE),
        ),
    )


class _Holder:
    """A provider_source whose snapshot a test can swap."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def __call__(self) -> Snapshot:
        return self.snapshot


def _exporter(
    source: _Holder,
    url: str,
    *,
    interval_s: float = 3600.0,
    headers: dict[str, str] | None = None,
    resource_attributes: dict[str, str] | None = None,
) -> OtelExporter:
    """An exporter that only exports when told to (unless `interval_s` says otherwise)."""
    return OtelExporter(
        source,
        url,
        interval_s=interval_s,
        headers=headers,
        resource_attributes=resource_attributes,
        timeout_s=10.0,
    )


def _export_once(receiver: OtlpReceiver, snapshot: Snapshot) -> dict[str, Metric]:
    exporter = _exporter(_Holder(snapshot), receiver.url)
    exporter.start()
    try:
        assert exporter.force_flush()
        (received,) = receiver.wait_for(1)
    finally:
        exporter.shutdown()
    return _metrics(received.request)


# --- what arrives -----------------------------------------------------------------------


def test_names_and_units_on_the_wire(receiver: OtlpReceiver) -> None:
    metrics = _export_once(receiver, _snapshot())
    units = {name: m.unit for name, m in metrics.items()}
    assert units == {
        "hw.power": "W",
        "hw.energy": "J",
        "hw.gpu.memory.usage": "By",
        "hw.temperature": "Cel",
        "hw.gpu.io": "By",
        "gpumetrics.gpu.nvlink_link_data": "By",
        "gpumetrics.engine.kv_cache_usage": "1",
        "gpumetrics.engine.prefix_cache_hit_tokens": "{token}",
        "gen_ai.server.time_to_first_token": "s",
    }
    assert metrics["hw.power"].description == G.GPU_POWER.help


def test_derived_gauges_reach_otlp_backends(receiver: OtlpReceiver) -> None:
    """What an OTLP user gets without PromQL: serve's windowed hit ratio and MBU as gauges,
    with the window as an attribute (400 of 1,600 new prompt tokens hit over 10 s)."""
    gauges = DerivedGauges(300)
    for t, queried, hit, read in ((0.0, 0.0, 0.0, 0.0), (10.0, 1600.0, 400.0, 2.4e13)):
        gauges.observe(
            "engine:vllm-0",
            t,
            (
                E.PREFIX_QUERIED.sample(queried, *ENGINE),
                E.PREFIX_HIT.sample(hit, *ENGINE),
                E.READ_BYTES.sample(read, *ENGINE),
                E.FLOPS.sample(read, *ENGINE),
                E.ENGINE_GPU_INFO.sample(1, *ENGINE, "0", "GPU-abc"),
            ),
        )
    peak = G.PEAK_MEMORY_BANDWIDTH.sample(4.8e12, *GPU)
    gauges.observe("nvml", 0.0, (peak,))
    metrics = _export_once(receiver, Snapshot(10.0, gauges.samples()))
    (hit,) = metrics["gpumetrics.engine.prefix_cache_hit"].gauge.data_points
    assert hit.as_double == 0.25
    assert _attrs(hit.attributes) == {
        "gpumetrics.engine.name": "vllm-0",
        "gen_ai.request.model": "llama",
        "gpumetrics.window": "5m",
    }
    assert metrics["gpumetrics.engine.prefix_cache_hit"].unit == "1"
    (mbu,) = metrics["gpumetrics.engine.memory_bandwidth_utilization"].gauge.data_points
    assert mbu.as_double == pytest.approx(2.4e12 / 4.8e12)
    assert metrics["gpumetrics.engine.arithmetic_intensity"].unit == "{flop}/By"


def test_gauges_carry_the_snapshot_values_and_hw_attributes(receiver: OtlpReceiver) -> None:
    metrics = _export_once(receiver, _snapshot())
    (power,) = metrics["hw.power"].gauge.data_points
    assert power.as_double == 512.25
    assert _attrs(power.attributes) == {
        "hw.id": "GPU-abc",
        "hw.model": "NVIDIA H200",
        "hw.type": "gpu",
        "hw.vendor": "nvidia",
        "gpumetrics.gpu.index": "0",
    }
    (temperature,) = metrics["hw.temperature"].gauge.data_points
    assert _attrs(temperature.attributes)["hw.sensor_location"] == "memory"
    (kv,) = metrics["gpumetrics.engine.kv_cache_usage"].gauge.data_points
    assert kv.as_double == 0.42
    assert _attrs(kv.attributes) == {
        "gpumetrics.engine.name": "vllm-0",
        "gen_ai.request.model": "llama",
    }


def test_counters_are_monotonic_cumulative_sums(receiver: OtlpReceiver) -> None:
    metrics = _export_once(receiver, _snapshot())
    for name, value in [
        ("hw.energy", 1.5e6),
        ("gpumetrics.engine.prefix_cache_hit_tokens", 1234.0),
        ("hw.gpu.io", 1.0e9),
    ]:
        total = metrics[name].sum
        assert total.is_monotonic, name
        assert total.aggregation_temporality == CUMULATIVE, name
        (point,) = total.data_points
        assert point.as_double == value, name
        assert 0 < point.start_time_unix_nano <= point.time_unix_nano, name
    (io,) = metrics["hw.gpu.io"].sum.data_points
    assert _attrs(io.attributes)["network.io.direction"] == "transmit"


def test_memory_usage_is_a_non_monotonic_sum(receiver: OtlpReceiver) -> None:
    usage = _export_once(receiver, _snapshot())["hw.gpu.memory.usage"].sum
    assert not usage.is_monotonic
    assert usage.aggregation_temporality == CUMULATIVE
    assert usage.data_points[0].as_double == 4.0e10


def test_nvlink_links_and_directions_are_attributes(receiver: OtlpReceiver) -> None:
    points = _export_once(receiver, _snapshot())["gpumetrics.gpu.nvlink_link_data"].sum.data_points
    by_direction = {
        _attrs(p.attributes)["network.io.direction"]: (p.as_double, _attrs(p.attributes))
        for p in points
    }
    assert set(by_direction) == {"transmit", "receive"}
    assert by_direction["transmit"][0] == 4096.0
    assert by_direction["receive"][0] == 8192.0
    assert by_direction["receive"][1]["gpumetrics.link"] == "3"
    assert by_direction["receive"][1]["hw.id"] == "GPU-abc"


def test_histogram_is_cumulative_explicit_buckets_in_seconds(receiver: OtlpReceiver) -> None:
    histogram = _export_once(receiver, _snapshot())["gen_ai.server.time_to_first_token"].histogram
    assert histogram.aggregation_temporality == CUMULATIVE
    (point,) = histogram.data_points
    assert tuple(point.explicit_bounds) == E.TTFT_BUCKETS
    assert list(point.bucket_counts) == TTFT_PER_BUCKET
    assert point.count == 11
    assert point.sum == 7.5
    assert not point.HasField("min")
    assert not point.HasField("max")
    assert 0 < point.start_time_unix_nano <= point.time_unix_nano
    assert _attrs(point.attributes) == {
        "gpumetrics.engine.name": "vllm-0",
        "gen_ai.request.model": "llama",
        "gen_ai.operation.name": "text_completion",
        "gen_ai.provider.name": "vllm",
    }


def test_request_is_gzipped_with_headers_and_resource(receiver: OtlpReceiver) -> None:
    exporter = _exporter(
        _Holder(_snapshot()),
        receiver.url + "/",
        headers={"Authorization": "Bearer t0ken"},
        resource_attributes={"host.name": "node-1"},
    )
    assert exporter.endpoint == receiver.url + "/v1/metrics"
    exporter.start()
    try:
        assert exporter.force_flush()
        (received,) = receiver.wait_for(1)
    finally:
        exporter.shutdown()
    assert received.path == "/v1/metrics"
    assert received.headers["content-encoding"] == "gzip"
    assert received.headers["authorization"] == "Bearer t0ken"
    (resource_metrics,) = received.request.resource_metrics
    resource = _attrs(resource_metrics.resource.attributes)
    assert resource["host.name"] == "node-1"
    assert resource["service.name"] == "gpumetrics"
    (scope_metrics,) = resource_metrics.scope_metrics
    assert scope_metrics.scope.name == "gpumetrics"


def test_own_provider_not_the_global_one(receiver: OtlpReceiver) -> None:
    exporter = _exporter(_Holder(_snapshot()), receiver.url)
    exporter.start()
    try:
        assert exporter.meter_provider is not None
        assert get_meter_provider() is not exporter.meter_provider
    finally:
        exporter.shutdown()


# --- over time --------------------------------------------------------------------------


def test_a_changed_snapshot_reports_the_new_values(receiver: OtlpReceiver) -> None:
    source = _Holder(_snapshot())
    exporter = _exporter(source, receiver.url)
    exporter.start()
    try:
        assert exporter.force_flush()
        source.snapshot = _snapshot(power=600.5, energy=2.5e6, hits=2000.0)
        more = (0, 1, 1, 3, 5, 5, 8, 8, 9, 9, 9, 9, 10, 12)
        source.snapshot = Snapshot(
            2.0,
            (
                *source.snapshot.samples[:-1],
                E.TTFT.sample(_ttft(more, 14, 9.0), *ENGINE),
            ),
        )
        assert exporter.force_flush()
        first, second = (_metrics(r.request) for r in receiver.wait_for(2))
    finally:
        exporter.shutdown()
    assert second["hw.power"].gauge.data_points[0].as_double == 600.5
    assert second["hw.energy"].sum.data_points[0].as_double == 2.5e6
    assert (
        second["gpumetrics.engine.prefix_cache_hit_tokens"].sum.data_points[0].as_double == 2000.0
    )
    old = first["gen_ai.server.time_to_first_token"].histogram.data_points[0]
    new = second["gen_ai.server.time_to_first_token"].histogram.data_points[0]
    assert (new.count, new.sum) == (14, 9.0)
    assert list(new.bucket_counts)[-2:] == [2, 2]
    assert new.start_time_unix_nano == old.start_time_unix_nano
    assert new.time_unix_nano >= old.time_unix_nano
    energy_start = first["hw.energy"].sum.data_points[0].start_time_unix_nano
    assert second["hw.energy"].sum.data_points[0].start_time_unix_nano == energy_start


def test_periodic_exports_arrive_without_a_flush(receiver: OtlpReceiver) -> None:
    exporter = _exporter(_Holder(_snapshot()), receiver.url, interval_s=0.1)
    exporter.start()
    try:
        received = receiver.wait_for(2)
    finally:
        exporter.shutdown()
    assert all("hw.power" in _metrics(r.request) for r in received)


def test_shutdown_sends_a_final_export(receiver: OtlpReceiver) -> None:
    exporter = _exporter(_Holder(_snapshot()), receiver.url)
    exporter.start()
    assert exporter.shutdown()
    (received,) = receiver.wait_for(1)
    assert "hw.energy" in _metrics(received.request)
    assert exporter.shutdown()  # idempotent, sends nothing more
    assert len(receiver.received) == 1


def test_a_snapshot_of_only_histograms_is_still_sent(receiver: OtlpReceiver) -> None:
    only = Snapshot(1.0, (E.TTFT.sample(_ttft(TTFT_CUMULATIVE, 11, 7.5), *ENGINE),))
    metrics = _export_once(receiver, only)
    assert list(metrics) == ["gen_ai.server.time_to_first_token"]
    assert list(
        metrics["gen_ai.server.time_to_first_token"].histogram.data_points[0].bucket_counts
    ) == (TTFT_PER_BUCKET)


def test_an_empty_snapshot_sends_nothing_and_succeeds(receiver: OtlpReceiver) -> None:
    exporter = _exporter(_Holder(Snapshot(1.0)), receiver.url)
    exporter.start()
    assert exporter.force_flush()
    assert exporter.shutdown()
    assert receiver.received == []


def test_a_raising_source_skips_a_cycle_and_recovers(receiver: OtlpReceiver) -> None:
    calls = {"n": 0}

    def source() -> Snapshot:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("sampler not ready")
        return _snapshot()

    exporter = OtelExporter(source, receiver.url, interval_s=3600.0, timeout_s=10.0)
    exporter.start()
    try:
        assert exporter.force_flush()  # nothing to send
        assert exporter.force_flush()
        (received,) = receiver.wait_for(1)
    finally:
        exporter.shutdown()
    assert "hw.power" in _metrics(received.request)


# --- failure and lifecycle --------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_endpoint_that_is_down_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1/metrics"
    exporter = OtelExporter(_Holder(_snapshot()), url, interval_s=3600.0, timeout_s=0.5)
    exporter.start()
    with caplog.at_level(logging.WARNING, logger="gpumetrics.export.otel"):
        assert exporter.force_flush() is False
        assert exporter.shutdown() is False
    failures = [r for r in caplog.records if r.name == "gpumetrics.export.otel"]
    assert len(failures) == 2
    assert all(url in r.getMessage() for r in failures)


def test_lifecycle_errors() -> None:
    exporter = OtelExporter(_Holder(_snapshot()), f"http://127.0.0.1:{_closed_port()}")
    assert exporter.meter_provider is None
    assert exporter.force_flush() is False  # not started
    assert exporter.shutdown()  # nothing to flush
    with pytest.raises(RuntimeError, match="shut down"):
        exporter.start()


def test_start_twice_raises(receiver: OtlpReceiver) -> None:
    exporter = _exporter(_Holder(_snapshot()), receiver.url)
    exporter.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            exporter.start()
    finally:
        exporter.shutdown()
    assert exporter.force_flush() is False  # after shutdown


@pytest.mark.parametrize(
    ("interval_s", "timeout_s", "match"), [(0.0, 5.0, "interval_s"), (10.0, -1.0, "timeout_s")]
)
def test_bad_options_are_rejected(interval_s: float, timeout_s: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OtelExporter(
            _Holder(_snapshot()),
            "http://127.0.0.1:4318",
            interval_s=interval_s,
            timeout_s=timeout_s,
        )


def test_counters_stay_cumulative_whatever_the_environment_prefers(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "DELTA")
    energy = _export_once(receiver, _snapshot())["hw.energy"].sum
    assert energy.aggregation_temporality == CUMULATIVE
    assert energy.data_points[0].as_double == 1.5e6
