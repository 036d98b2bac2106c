"""The HTTP endpoint: /metrics, /health, /ready, errors as 500s, a taken port as a clear error."""

from __future__ import annotations

import http.client

import pytest

from gpumetrics import catalog
from gpumetrics.export.prometheus import PrometheusEndpoint
from gpumetrics.export.server import ListenError, MetricsServer, PortInUseError
from gpumetrics.samples import Snapshot


def _get(port: int, path: str, accept: str | None = None) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Accept": accept} if accept else {})
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return response.status, response.getheader("Content-Type") or "", body


@pytest.fixture
def snapshot_box() -> list[Snapshot]:
    sample = catalog.gpu.GPU_POWER.sample(123.0, "0", "GPU-0", "NVIDIA H200")
    return [Snapshot(0.0, (sample,))]


def test_metrics_health_and_ready(snapshot_box: list[Snapshot]) -> None:
    ready = [False]
    endpoint = PrometheusEndpoint(lambda: snapshot_box[0])
    server = MetricsServer("127.0.0.1", 0, endpoint.render, lambda: ready[0])
    server.start()
    try:
        status, content_type, body = _get(server.port, "/metrics")
        assert status == 200
        assert content_type.startswith("text/plain")
        assert 'gpumetrics_gpu_power_watts{gpu="0"' in body
        _, content_type, body = _get(server.port, "/metrics", "application/openmetrics-text")
        assert content_type.startswith("application/openmetrics-text")
        assert body.rstrip().endswith("# EOF")
        assert _get(server.port, "/health")[0] == 200
        assert _get(server.port, "/ready")[0] == 503
        ready[0] = True
        assert _get(server.port, "/ready")[0] == 200
        assert _get(server.port, "/nope")[0] == 404
    finally:
        server.stop()


def test_a_rendering_error_is_a_500_not_a_dropped_connection() -> None:
    def explode(_: str | None) -> tuple[bytes, str]:
        raise RuntimeError("boom")

    server = MetricsServer("127.0.0.1", 0, explode)
    server.start()
    try:
        status, _, body = _get(server.port, "/metrics")
        assert status == 500
        assert "boom" not in body
    finally:
        server.stop()


def test_port_in_use_is_a_clear_error() -> None:
    first = MetricsServer("127.0.0.1", 0, lambda _: (b"", "text/plain"))
    try:
        with pytest.raises(PortInUseError, match="already in use"):
            MetricsServer("127.0.0.1", first.port, lambda _: (b"", "text/plain"))
    finally:
        first.stop()


@pytest.mark.parametrize("address", ["192.0.2.1", "no-such-host.invalid"])
def test_an_address_that_cannot_be_bound_is_one_clear_line(address: str) -> None:
    with pytest.raises(ListenError, match=f"cannot listen on {address}:0: ") as info:
        MetricsServer(address, 0, lambda _: (b"", "text/plain"))
    assert "\n" not in str(info.value)
