"""TLS, client certificates and basic auth on the metrics endpoint, with real certificates
made in the test (trustme) and bcrypt hashes."""

from __future__ import annotations

import base64
import http.client
import ssl
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import trustme

from gpumetrics import catalog
from gpumetrics.config import WebConfig
from gpumetrics.samples import Snapshot

from .serving import serve_snapshot

SNAPSHOT = Snapshot(0.0, (catalog.gpu.GPU_POWER.sample(321.0, "0", "GPU-0", "NVIDIA H200"),))
SECRET_HELP = catalog.gpu.GPU_POWER.name


def _serve(web: WebConfig) -> Iterator[int]:
    yield from serve_snapshot(SNAPSHOT, web)


def _get(
    port: int, context: ssl.SSLContext | None, auth: tuple[str, str] | None, path: str = "/metrics"
) -> tuple[int, str]:
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    headers = {}
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return response.status, body


def test_basic_auth_over_tls(ca: trustme.CA, pki: dict[str, Path]) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = WebConfig(
        cert_file=pki["cert"], key_file=pki["key"], basic_auth_users={"prometheus": hashed}
    )
    client = ssl.create_default_context()
    ca.configure_trust(client)
    for port in _serve(web):
        status, body = _get(port, client, ("prometheus", "s3cret"))
        assert status == 200
        assert "gpumetrics_gpu_power_watts" in body
        assert _get(port, client, ("prometheus", "s3cret"))[0] == 200  # cached verification
        for wrong in (("prometheus", "guess"), ("root", "s3cret"), None):
            status, body = _get(port, client, wrong)
            assert status == 401
            assert SECRET_HELP not in body  # nothing leaked
        assert _get(port, client, None, "/health")[0] == 200  # probes need no credentials
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            _get(port, None, ("prometheus", "s3cret"))  # plain HTTP to a TLS port


def test_client_certificate_required(ca: trustme.CA, pki: dict[str, Path]) -> None:
    web = WebConfig(
        cert_file=pki["cert"],
        key_file=pki["key"],
        client_ca_file=pki["ca"],
        client_auth_type="RequireAndVerifyClientCert",
    )
    with_cert = ssl.create_default_context()
    ca.configure_trust(with_cert)
    ca.issue_cert("prometheus@example").configure_cert(with_cert)
    without = ssl.create_default_context()
    ca.configure_trust(without)
    stranger = ssl.create_default_context()
    ca.configure_trust(stranger)
    trustme.CA().issue_cert("mallory").configure_cert(stranger)
    for port in _serve(web):
        assert _get(port, with_cert, None)[0] == 200
        # No certificate: the handshake succeeds (so probes work), /metrics is refused.
        status, body = _get(port, without, None)
        assert status == 403
        assert SECRET_HELP not in body
        assert _get(port, without, None, "/health")[0] == 200
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            _get(port, stranger, None)  # a certificate from another CA fails the handshake
        assert _get(port, with_cert, None)[0] == 200  # the server survived the failures
