"""A metrics server over a fixed snapshot, for the endpoint's TLS and auth tests."""

from __future__ import annotations

from collections.abc import Iterator

from gpumetrics.config import WebConfig
from gpumetrics.export.prometheus import PrometheusEndpoint
from gpumetrics.export.server import MetricsServer
from gpumetrics.samples import Snapshot


def serve_snapshot(snapshot: Snapshot, web: WebConfig) -> Iterator[int]:
    """Yields the port of a MetricsServer over `snapshot` with `web`; stops it afterwards."""
    server = MetricsServer("127.0.0.1", 0, PrometheusEndpoint(lambda: snapshot).render, web=web)
    server.start()
    try:
        yield server.port
    finally:
        server.stop()
