"""Request heads, Accept-Encoding and response heads, against hand-written expectations."""

from __future__ import annotations

import pytest

from gpumetrics.export.http.request import (
    BadRequestError,
    Response,
    accepts_gzip,
    encode_head,
    parse_head,
)


def test_a_prometheus_scrape_head() -> None:
    request = parse_head(
        b"GET /metrics?x=1 HTTP/1.1\r\nHost: node:9835\r\nUser-Agent: Prometheus/2.42.0\r\n"
        b"Accept: text/plain;version=0.0.4\r\nAccept-Encoding: gzip\r\n"
        b"X-Prometheus-Scrape-Timeout-Seconds: 10"
    )
    assert (request.method, request.path, request.version) == ("GET", "/metrics", "HTTP/1.1")
    assert request.headers["accept-encoding"] == "gzip"
    assert request.keep_alive
    assert not request.has_body


def test_keep_alive_rules_absolute_targets_and_bodies() -> None:
    assert not parse_head(b"GET / HTTP/1.0").keep_alive
    assert parse_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive").keep_alive
    assert not parse_head(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close").keep_alive
    assert parse_head(b"GET http://h:1/health?a HTTP/1.1\r\nHost: h").path == "/health"
    assert parse_head(b"GET http://h:1 HTTP/1.1\r\nHost: h").path == "/"
    assert parse_head(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5").has_body
    assert parse_head(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked").has_body
    joined = parse_head(b"GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\nAccept: b")
    assert joined.headers["accept"] == "a, b"


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /", 400),
        (b"GET / HTTP/1.1", 400),  # no Host
        (b"GET / HTTP/3.0\r\nHost: h", 505),
        (b"GET / FTP/1.0", 400),
        (b"G(T / HTTP/1.1\r\nHost: h", 400),
        (b"GET * HTTP/1.1\r\nHost: h", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\n folded", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nHost: i", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10", 400),
    ],
)
def test_malformed_heads(head: bytes, status: int) -> None:
    with pytest.raises(BadRequestError) as info:
        parse_head(head)
    assert info.value.status == status


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        (None, False),
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0, br", False),
        ("x-gzip", True),
        ("br", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accepts_gzip(header: str | None, wanted: bool) -> None:
    assert accepts_gzip(header) is wanted


def test_encode_head() -> None:
    head = encode_head(
        Response(401, b"no\n", headers=(("WWW-Authenticate", "Basic"),)),
        keep_alive=False,
        extra={"X-Frame-Options": "deny"},
    ).decode()
    lines = head.split("\r\n")
    assert lines[0] == "HTTP/1.1 401 Unauthorized"
    assert "Content-Length: 3" in lines
    assert "WWW-Authenticate: Basic" in lines
    assert "X-Frame-Options: deny" in lines
    assert lines[-3:] == ["Connection: close", "", ""]
