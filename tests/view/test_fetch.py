"""Reading a `serve` endpoint the way the web config guards it: plain HTTP, basic auth, TLS
with a CA, a client certificate; every failure is one line (certificates made with trustme,
passwords checked by the real server with bcrypt)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import trustme

from gpumetrics import catalog
from gpumetrics.config import WebConfig
from gpumetrics.export.prometheus import PrometheusEndpoint
from gpumetrics.export.server import MetricsServer
from gpumetrics.samples import Snapshot
from gpumetrics.view import Endpoint, FetchError, Point, read_points

GPU = ("0", "GPU-0", "NVIDIA H200")
SNAPSHOT = Snapshot(
    0.0,
    (
        catalog.gpu.GPU_POWER.sample(321.0, *GPU),
        catalog.derived.NVLINK_UTILIZATION.sample(0.25, *GPU, "5m"),
    ),
)
HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def pki(ca: trustme.CA, tmp_path: Path) -> dict[str, Path]:
    server = ca.issue_cert("127.0.0.1")
    client = ca.issue_cert("client@example.org")
    paths = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "ca", "ccert", "ckey")}
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    ca.cert_pem.write_to_path(str(paths["ca"]))
    client.cert_chain_pems[0].write_to_path(str(paths["ccert"]))
    client.private_key_pem.write_to_path(str(paths["ckey"]))
    return paths


def _serve(web: WebConfig | None) -> Iterator[int]:
    server = MetricsServer("127.0.0.1", 0, PrometheusEndpoint(lambda: SNAPSHOT).render, web=web)
    server.start()
    try:
        yield server.port
    finally:
        server.stop()


@pytest.fixture
def plain() -> Iterator[int]:
    yield from _serve(None)


@pytest.fixture
def guarded(pki: dict[str, Path]) -> Iterator[int]:
    web = WebConfig(
        cert_file=pki["cert"],
        key_file=pki["key"],
        client_ca_file=pki["ca"],
        client_auth_type="RequireAndVerifyClientCert",
        basic_auth_users={"prometheus": HASH},
    )
    yield from _serve(web)


def test_plain_http(plain: int) -> None:
    points = read_points(Endpoint(f"http://127.0.0.1:{plain}/metrics"))
    labels = {"gpu": "0", "gpu_uuid": "GPU-0", "gpu_model": "NVIDIA H200"}
    assert Point("gpumetrics_gpu_power_watts", labels, 321.0) in points
    nvlink = Point(catalog.derived.NVLINK_UTILIZATION.name, {**labels, "window": "5m"}, 0.25)
    assert nvlink in points


def test_tls_client_certificate_and_basic_auth(guarded: int, pki: dict[str, Path]) -> None:
    url = f"https://127.0.0.1:{guarded}/metrics"
    endpoint = Endpoint(
        url,
        user="prometheus",
        password="s3cret",
        ca_file=pki["ca"],
        cert_file=pki["ccert"],
        key_file=pki["ckey"],
    )
    assert any(p.name == "gpumetrics_gpu_power_watts" for p in read_points(endpoint))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"password": "wrong"}, "HTTP 401"),
        ({"ca_file": None}, "CERTIFICATE_VERIFY_FAILED"),
        ({"cert_file": None, "key_file": None}, "HTTP 403"),  # probes need none, so TLS lets it in
    ],
)
def test_each_missing_credential_is_one_line(
    guarded: int, pki: dict[str, Path], change: dict[str, object], message: str
) -> None:
    settings: dict[str, object] = {
        "user": "prometheus",
        "password": "s3cret",
        "ca_file": pki["ca"],
        "cert_file": pki["ccert"],
        "key_file": pki["ckey"],
        **change,
    }
    with pytest.raises(FetchError, match=message) as failure:
        read_points(Endpoint(f"https://127.0.0.1:{guarded}/metrics", **settings))  # type: ignore[arg-type]
    assert "\n" not in str(failure.value)


def test_insecure_skips_verification_only(guarded: int, pki: dict[str, Path]) -> None:
    endpoint = Endpoint(
        f"https://127.0.0.1:{guarded}/metrics",
        user="prometheus",
        password="s3cret",
        cert_file=pki["ccert"],
        key_file=pki["ckey"],
        insecure=True,
    )
    assert read_points(endpoint)


def test_refused_and_not_metrics(plain: int) -> None:
    with pytest.raises(FetchError, match=re.escape("cannot read http://127.0.0.1:1/metrics")):
        read_points(Endpoint("http://127.0.0.1:1/metrics", timeout_s=2))
    with pytest.raises(FetchError, match="HTTP 404"):
        read_points(Endpoint(f"http://127.0.0.1:{plain}/nothing-here"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "127.0.0.1:9835/metrics"}, "expected http:// or https://"),
        ({"cert_file": Path("c.pem")}, "go together"),
        ({"user": "prometheus"}, "go together"),
    ],
)
def test_settings_that_cannot_work(kwargs: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {"url": "http://127.0.0.1:9835/metrics", **kwargs}
    with pytest.raises(FetchError, match=message):
        Endpoint(**settings)  # type: ignore[arg-type]
