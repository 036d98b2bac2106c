"""One bounded HTTP GET of an engine's /metrics (stdlib http.client; CLI: `curl -m 2 URL`).

Bounds: the body may hold at most `max_bytes` (a larger Content-Length is refused before
reading; a body without one is cut off as soon as it passes the limit), and the whole exchange
(connect, request, status and headers, body) ends by `timeout_s`. Each socket operation waits at
most the time left, and a watchdog timer shuts the socket down at the deadline, so an engine
that trickles bytes slowly cannot stretch a scrape either. Name resolution (getaddrinfo) cannot
be interrupted and is not covered: give engines as IP addresses or `localhost`.

Every failure raises `EngineError` with a code (`errors.py`); nothing else escapes.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from typing import Final

from ... import __version__
from ...engine_config import Endpoint
from .errors import (
    CONNECTION,
    CONNECTION_REFUSED,
    CONNECTION_RESET,
    DNS,
    PARSE,
    PROTOCOL,
    TIMEOUT,
    TLS,
    TOO_LARGE,
    UNSUPPORTED_ENCODING,
    EngineError,
    http_code,
)

__all__ = ["fetch"]

_CHUNK: Final = 64 * 1024
_HEADERS: Final = {
    # Classic text format: OpenMetrics or protobuf would need another parser.
    "Accept": "text/plain;version=0.0.4;q=1.0,*/*;q=0.1",
    "Accept-Encoding": "identity",
    "Connection": "close",
    "User-Agent": f"gpumetrics/{__version__}",
}


def fetch(endpoint: Endpoint, *, max_bytes: int, timeout_s: float) -> bytes:
    """The body of `GET endpoint` (status 200 only), at most `max_bytes`, within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    url = f"{endpoint.scheme}://{endpoint.host}:{endpoint.port}{endpoint.path}"
    conn: http.client.HTTPConnection
    if endpoint.scheme == "https":
        conn = http.client.HTTPSConnection(
            endpoint.host, endpoint.port, timeout=timeout_s, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout_s)
    expired = threading.Event()
    watchdog: threading.Timer | None = None
    try:
        conn.connect()
        sock = conn.sock
        assert isinstance(sock, socket.socket)
        watchdog = threading.Timer(_left(deadline, url), _shut, (sock, expired))
        watchdog.daemon = True
        watchdog.start()
        body = _exchange(conn, sock, endpoint.path, deadline, max_bytes, url)
    except EngineError as exc:
        if expired.is_set() and exc.code != TOO_LARGE:
            raise _timeout(url, timeout_s) from exc
        raise
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise _timeout(url, timeout_s) from exc
        raise _network_error(exc, url) from exc
    finally:
        if watchdog is not None:
            watchdog.cancel()
        conn.close()
    if expired.is_set():  # the shutdown read as end-of-body: the body is incomplete
        raise _timeout(url, timeout_s)
    return body


def _exchange(
    conn: http.client.HTTPConnection,
    sock: socket.socket,
    path: str,
    deadline: float,
    max_bytes: int,
    url: str,
) -> bytes:
    sock.settimeout(_left(deadline, url))
    conn.request("GET", path, headers=_HEADERS)
    sock.settimeout(_left(deadline, url))
    response = conn.getresponse()
    if response.status != 200:
        raise EngineError(http_code(response.status), f"{url} answered {response.status}")
    encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise EngineError(UNSUPPORTED_ENCODING, f"{url} sent Content-Encoding {encoding}")
    if response.length is not None and response.length > max_bytes:
        raise EngineError(TOO_LARGE, f"{url} announces {response.length} bytes > {max_bytes}")
    chunks: list[bytes] = []
    total = 0
    while True:
        sock.settimeout(_left(deadline, url))
        chunk = response.read1(_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            raise EngineError(TOO_LARGE, f"{url} sent more than {max_bytes} bytes")
        chunks.append(chunk)
    if response.length:  # the peer closed before Content-Length bytes arrived
        raise EngineError(PARSE, f"{url}: body truncated, {response.length} bytes missing")
    return b"".join(chunks)


def _left(deadline: float, url: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise EngineError(TIMEOUT, f"{url}: out of time")
    return left


def _shut(sock: socket.socket, expired: threading.Event) -> None:
    """Watchdog: end a blocked recv/send at the deadline."""
    expired.set()
    with contextlib.suppress(OSError):  # already closed: nothing to interrupt
        sock.shutdown(socket.SHUT_RDWR)


def _timeout(url: str, timeout_s: float) -> EngineError:
    return EngineError(TIMEOUT, f"{url} did not answer in full within {timeout_s:g} s")


def _network_error(exc: OSError | http.client.HTTPException, url: str) -> EngineError:
    """Map a socket or HTTP failure to a code (TimeoutError before OSError: it is one)."""
    mapping: tuple[tuple[type[BaseException], str], ...] = (
        (TimeoutError, TIMEOUT),
        (ConnectionRefusedError, CONNECTION_REFUSED),
        (http.client.IncompleteRead, PARSE),
        (ConnectionError, CONNECTION_RESET),  # reset, aborted, broken pipe, RemoteDisconnected
        (socket.gaierror, DNS),
        (ssl.SSLError, TLS),
        (http.client.HTTPException, PROTOCOL),
    )
    for kind, code in mapping:
        if isinstance(exc, kind):
            return EngineError(code, f"{url}: {exc!r}")
    return EngineError(CONNECTION, f"{url}: {exc!r}")
