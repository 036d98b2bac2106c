"""TLS settings that mean what they say, with real certificates (trustme): min/max version,
cipher suites, client_allowed_sans, probes without a client certificate."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from gpumetrics import catalog
from gpumetrics.config import WebConfig
from gpumetrics.export.prometheus import PrometheusEndpoint
from gpumetrics.export.server import MetricsServer
from gpumetrics.samples import Snapshot

from ..serving import serve_snapshot

SNAPSHOT = Snapshot(0.0, (catalog.gpu.GPU_POWER.sample(1.0, "0", "GPU-0", "NVIDIA H200"),))


def _serve(web: WebConfig) -> Iterator[int]:
    yield from serve_snapshot(SNAPSHOT, web)


def _client(ca: trustme.CA, *identities: str, maximum: ssl.TLSVersion | None = None):  # type: ignore[no-untyped-def]
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if identities:
        ca.issue_cert(*identities).configure_cert(context)
    if maximum is not None:
        context.maximum_version = maximum
    return context


def _get(port: int, context: ssl.SSLContext, path: str = "/metrics") -> tuple[int, str, str]:
    """(status, TLS version, cipher) of one request."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    assert conn.sock is not None
    version, cipher = conn.sock.version() or "", conn.sock.cipher()[0]  # type: ignore[attr-defined]
    conn.close()
    return response.status, version, cipher


def test_min_version_tls13_refuses_a_tls12_client(ca: trustme.CA, pki: dict[str, Path]) -> None:
    web = WebConfig(cert_file=pki["cert"], key_file=pki["key"], min_version="TLS13")
    for port in _serve(web):
        assert _get(port, _client(ca))[:2] == (200, "TLSv1.3")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _get(port, _client(ca, maximum=ssl.TLSVersion.TLSv1_2))


def test_max_version_and_cipher_suites(ca: trustme.CA, pki: dict[str, Path]) -> None:
    suite = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"  # trustme keys are ECDSA
    web = WebConfig(
        cert_file=pki["cert"], key_file=pki["key"], max_version="TLS12", cipher_suites=(suite,)
    )
    for port in _serve(web):
        assert _get(port, _client(ca)) == (200, "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")
        only_other = _client(ca)
        only_other.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _get(port, only_other)


def test_client_allowed_sans(ca: trustme.CA, pki: dict[str, Path]) -> None:
    web = WebConfig(
        cert_file=pki["cert"],
        key_file=pki["key"],
        client_ca_file=pki["ca"],
        client_auth_type="RequireAndVerifyClientCert",
        client_allowed_sans=("scraper.example", "10.0.0.7"),
    )
    for port in _serve(web):
        assert _get(port, _client(ca, "scraper.example"))[0] == 200
        assert _get(port, _client(ca, "10.0.0.7"))[0] == 200  # an IP SAN
        outsider = _client(ca, "other.example")
        assert _get(port, outsider)[0] == 403
        assert _get(port, outsider, "/health")[0] == 200
        assert _get(port, _client(ca), "/ready")[0] == 200  # probes need no certificate


def test_require_any_client_cert_with_a_ca(ca: trustme.CA, pki: dict[str, Path]) -> None:
    web = WebConfig(
        cert_file=pki["cert"],
        key_file=pki["key"],
        client_ca_file=pki["ca"],
        client_auth_type="RequireAnyClientCert",
    )
    for port in _serve(web):
        assert _get(port, _client(ca, "anyone.example"))[0] == 200
        assert _get(port, _client(ca))[0] == 403
        assert _get(port, _client(ca), "/health")[0] == 200


def test_tls_connections_that_never_handshake_are_evicted_and_timed_out(
    ca: trustme.CA, pki: dict[str, Path]
) -> None:
    web = WebConfig(
        cert_file=pki["cert"], key_file=pki["key"], max_connections=4, read_header_timeout_s=0.5
    )
    server = MetricsServer("127.0.0.1", 0, PrometheusEndpoint(lambda: SNAPSHOT).render, web=web)
    server.start()
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(4)]
    try:
        assert _get(server.port, _client(ca))[0] == 200  # a slot was made for it
        assert server.front.evicted >= 1
        assert silent[-1].recv(1) == b""  # the handshake timeout closed the others too
        deadline = time.monotonic() + 10
        while server.front.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.front.open_connections == 0
    finally:
        for sock in silent:
            sock.close()
        server.stop()
