"""The engine-side /metrics endpoint: standard-library HTTP on a daemon thread.

Started explicitly by the engine (nothing listens at import). Loopback TCP by default, or a
Unix socket (`curl --unix-socket PATH http://engine/metrics`). Each request renders the
current values of its EngineMetrics on the server's own thread: reading the hook counters
takes no lock, so a scrape never blocks the engine loop. The sidecar (`sources/engine`) and
Prometheus read this page exactly as they read vLLM's or SGLang's /metrics.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import socketserver
import stat
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from ..promtext import CONTENT_TYPE, render_samples
from ._state import EngineState

if TYPE_CHECKING:
    from .metrics import EngineMetrics

__all__ = ["MetricsEndpoint", "serve"]

log = logging.getLogger("gpumetrics.hooks")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._reply(404, b"not found; try /metrics\n", "text/plain; charset=utf-8")
            return
        metrics = self.server.metrics if isinstance(self.server, _Serving) else ()
        try:
            body = render_samples(s for m in metrics for s in m._collect())
        except Exception:
            log.exception("rendering the engine /metrics page failed")
            self._reply(500, b"error rendering metrics\n", "text/plain; charset=utf-8")
            return
        self._reply(200, body, CONTENT_TYPE)

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        client = self.client_address
        return str(client[0]) if isinstance(client, tuple) and client else "unix"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _Serving:
    """What every server here carries: the EngineMetrics it renders."""

    metrics: tuple[EngineState, ...] = ()


class _TcpServer(_Serving, ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), a DNS lookup that
        # can stall; the name is unused here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


class _Tcp6Server(_TcpServer):
    address_family = socket.AF_INET6


class _UnixServer(_Serving, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class MetricsEndpoint:
    """A running /metrics endpoint. `port` is the bound TCP port (0 on a Unix socket);
    `url` is what to scrape (for a Unix socket, the URL to pass to `curl --unix-socket`)."""

    def __init__(
        self,
        server: socketserver.BaseServer,
        *,
        address: str,
        port: int,
        unix_socket: str | None,
    ) -> None:
        self._server = server
        self.address, self.port, self.unix_socket = address, port, unix_socket
        host = f"[{address}]" if ":" in address else address
        self.url = (
            f"http://{host}:{port}/metrics" if unix_socket is None else "http://engine/metrics"
        )
        self._thread = threading.Thread(
            target=server.serve_forever, name="gpumetrics-hooks-endpoint", daemon=True
        )
        self._thread.start()
        self._closed = False

    def close(self) -> None:
        """Stop serving, close the socket (remove the Unix socket file). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)
        if self.unix_socket is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_socket)

    def __enter__(self) -> MetricsEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.unix_socket if self.unix_socket is not None else self.url
        return f"MetricsEndpoint({where!r})"


def serve(
    metrics: EngineMetrics | Iterable[EngineMetrics],
    *,
    address: str = "127.0.0.1",
    port: int = 0,
    unix_socket: str | None = None,
) -> MetricsEndpoint:
    """Serve GET /metrics for one or several EngineMetrics (404 for any other path).

    TCP on `address`:`port` (loopback by default; port 0 picks a free port, read it from
    `.port`), or a Unix socket at `unix_socket` (a stale socket file left by a dead process
    is replaced). Set-up errors raise: OSError when the address is taken, ValueError when two
    EngineMetrics share an (engine, model) pair (their series would collide).
    """
    group: tuple[EngineState, ...] = (
        (metrics,) if isinstance(metrics, EngineState) else tuple(metrics)
    )
    pairs = [(m.engine, m.model) for m in group]
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"(engine, model) pairs must be unique, got {pairs}")
    server: _TcpServer | _UnixServer
    if unix_socket is not None:
        _clear_stale_socket(unix_socket)
        server = _UnixServer(unix_socket, _Handler)
        bound_port = 0
    else:
        server = (_Tcp6Server if ":" in address else _TcpServer)((address, port), _Handler)
        bound_port = int(server.server_address[1])
    server.metrics = group
    return MetricsEndpoint(server, address=address, port=bound_port, unix_socket=unix_socket)


def _clear_stale_socket(path: str) -> None:
    """Remove `path` if it is a Unix socket nobody listens on; raise if it is in use or is
    not a socket."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(errno.EEXIST, "exists and is not a socket", path)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listening: left over from a dead process
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, "another process is serving on this socket", path)
