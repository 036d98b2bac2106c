"""The asyncio front on real sockets: connection cap with longest-idle eviction (auth-tarpitted
connections first), refusal when nothing is idle, header timeouts against slowloris,
keep-alive, HEAD, gzip, OpenMetrics, IPv6, malformed requests, and a prompt stop."""

from __future__ import annotations

import base64
import gzip
import http.client
import socket
import time
from collections.abc import Callable, Iterator

import bcrypt
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from gpumetrics import catalog
from gpumetrics.config import WebConfig
from gpumetrics.export.prometheus import PrometheusEndpoint
from gpumetrics.export.server import MetricsServer
from gpumetrics.samples import Snapshot

SNAPSHOT = Snapshot(
    0.0,
    tuple(
        catalog.gpu.GPU_POWER.sample(100.0 + i, str(i), f"GPU-{i}", "NVIDIA H200") for i in range(8)
    ),
)


def _server(web: WebConfig | None = None, address: str = "127.0.0.1") -> MetricsServer:
    server = MetricsServer(address, 0, PrometheusEndpoint(lambda: SNAPSHOT).render, web=web)
    server.start()
    return server


@pytest.fixture
def serve() -> Iterator[Callable[..., MetricsServer]]:
    started: list[MetricsServer] = []

    def make(web: WebConfig | None = None, address: str = "127.0.0.1") -> MetricsServer:
        started.append(_server(web, address))
        return started[-1]

    yield make
    for server in started:
        server.stop()


def _request(
    port: int, method: str = "GET", path: str = "/metrics", headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def _raw(port: int, data: bytes, host: str = "127.0.0.1") -> bytes:
    """Send `data`, return everything the server sends until it closes (10 s at most)."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_new_scrape_gets_a_slot_when_the_cap_is_full_of_idle_connections(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(WebConfig(max_connections=8))
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(8)]
    try:
        _wait_for(lambda: server.front.open_connections == 8, "8 open connections")
        for _ in range(3):
            assert _request(server.port).status == 200
        # the first scrape evicted one; later ones may reuse the slot a finished scrape freed
        assert 1 <= server.front.evicted <= 3
        assert server.front.open_connections <= 8
        assert idle[0].recv(1) == b""  # the longest-idle connection was the one closed
        assert server.front.refused == 0
    finally:
        for sock in idle:
            sock.close()


def test_with_no_idle_connection_the_excess_is_refused_at_once(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(WebConfig(max_connections=4))
    busy = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(4)]
    try:
        for sock in busy:  # each is mid-head: reading, not idle
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        _wait_for(lambda: not server.front._idle and server.front.open_connections == 4, "busy")
        reply = _raw(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 503 ")
        assert server.front.refused == 1
        busy[0].sendall(b"\r\n")  # finishing a request still works
        assert busy[0].recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in busy:
            sock.close()


def test_connections_held_in_the_auth_tarpit_are_closed_first_for_a_new_scrape(serve) -> None:  # type: ignore[no-untyped-def]
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    server = serve(WebConfig(max_connections=4, basic_auth_users={"prometheus": hashed}))
    server.front.app._tarpit_s = 30.0  # held for the whole test: nothing else frees a slot
    bad = "Authorization: Basic " + base64.b64encode(b"prometheus:wrong").decode()
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(4)]
    try:
        for sock in held:
            sock.sendall(f"GET /metrics HTTP/1.1\r\nHost: x\r\n{bad}\r\n\r\n".encode())
        _wait_for(lambda: server.front.tarpitted_connections == 4, "4 tarpitted connections")
        assert server.front.open_connections == 4
        assert not server.front._idle
        token = base64.b64encode(b"prometheus:s3cret").decode()
        assert _request(server.port, headers={"Authorization": f"Basic {token}"}).status == 200
        assert server.front.evicted == 1
        assert server.front.refused == 0
        assert held[0].recv(1) == b""  # the longest-held one was closed, unanswered
        assert server.front.tarpitted_connections == 3
    finally:
        for sock in held:
            sock.close()


def test_a_held_401_is_sent_after_the_tarpit(serve) -> None:  # type: ignore[no-untyped-def]
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    server = serve(WebConfig(basic_auth_users={"prometheus": hashed}))
    server.front.app._tarpit_s = 0.2
    reply = _raw(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 401 ")
    assert server.front.tarpitted_connections == 0


def test_a_slowloris_head_is_cut_off_by_the_header_timeout(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(WebConfig(read_header_timeout_s=0.3))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        closed = False
        for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            try:
                sock.sendall(bytes([byte]))  # one byte every 50 ms never completes the head
            except OSError:
                closed = True
                break
            sock.settimeout(0.05)
            try:
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
        assert closed, "the server kept a trickling head open for 10 s"
    assert _request(server.port).status == 200


def test_an_idle_first_connection_times_out_too(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(WebConfig(read_header_timeout_s=0.2))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        assert sock.recv(1) == b""  # closed by the server, long before the 10 s socket timeout
    _wait_for(lambda: server.front.open_connections == 0, "the connection table to empty")


def test_keep_alive_head_and_pipelining_on_one_connection(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    get = _request(server.port)
    length = int(get.getheader("Content-Length") or 0)
    reply = _raw(
        server.port,
        b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    first, second = reply.split(b"\r\n\r\n", 1)
    assert first.startswith(b"HTTP/1.1 200 ")
    assert f"Content-Length: {length}".encode() in first
    assert b"Connection: keep-alive" in first
    assert second.startswith(b"HTTP/1.1 200 ")  # no HEAD body came in between
    assert second.endswith(b"\r\n\r\nok\n")


def test_gzip_when_asked_decompresses_to_the_same_page(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/metrics")
    plain = conn.getresponse().read()
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "br;q=1.0, gzip;q=0.5"})
    response = conn.getresponse()
    packed = response.read()
    assert response.getheader("Content-Encoding") == "gzip"
    assert "Accept-Encoding" in (response.getheader("Vary") or "")
    assert gzip.decompress(packed) == plain
    assert len(packed) < len(plain)
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip;q=0"})
    response = conn.getresponse()
    assert response.read() == plain
    assert response.getheader("Content-Encoding") is None
    conn.close()


def test_openmetrics_when_asked(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    prometheus = (  # what Prometheus 2 sends by default
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
        "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    conn.request("GET", "/metrics", headers={"Accept": prometheus, "Accept-Encoding": "gzip"})
    response = conn.getresponse()
    body = gzip.decompress(response.read()).decode()
    assert response.getheader("Content-Type") == (
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    )
    assert response.getheader("Vary") == "Accept, Accept-Encoding"
    assert body.endswith("# EOF\n")
    assert {f.name for f in openmetrics_families(body)} == {"gpumetrics_gpu_power_watts"}
    conn.request("GET", "/metrics", headers={"Accept": "text/plain;q=1,application/*;q=0.9"})
    response = conn.getresponse()
    assert (response.getheader("Content-Type") or "").startswith("text/plain")
    assert "# EOF" not in response.read().decode()
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    assert (response.getheader("Content-Type") or "").startswith("text/plain")
    assert "# EOF" not in response.read().decode()
    conn.close()


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
        (b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
    ],
)
def test_bad_methods_paths_and_requests(serve, data: bytes, status: int) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    reply = _raw(server.port, data)
    assert reply.startswith(f"HTTP/1.1 {status} ".encode()), reply[:80]
    if status == 405:
        assert b"Allow: GET, HEAD" in reply
    assert _request(server.port).status == 200  # the server lives on


def test_a_request_with_a_body_is_answered_without_reading_it(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    head = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
    reply = _raw(server.port, head)  # the body never comes; the server answers and closes
    assert reply.startswith(b"HTTP/1.1 405 ")
    assert b"Connection: close" in reply


def test_ipv6(serve) -> None:  # type: ignore[no-untyped-def]
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server = serve(address="::1")
    conn = http.client.HTTPConnection("::1", server.port, timeout=10)
    conn.request("GET", "/metrics")
    assert conn.getresponse().status == 200
    conn.close()


def test_stop_is_prompt_with_connections_open() -> None:
    server = _server(WebConfig(max_connections=16))
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(10)]
    try:
        _wait_for(lambda: server.front.open_connections == 10, "10 open connections")
        server.stop()
        assert server.front._thread is not None
        assert not server.front._thread.is_alive()
        assert all(sock.recv(1) == b"" for sock in idle)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    finally:
        for sock in idle:
            sock.close()
