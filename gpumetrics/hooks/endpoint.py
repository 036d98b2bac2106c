"""The engine-side /metrics endpoint: standard-library HTTP on a daemon thread.

Started explicitly by the engine (nothing listens at import). Loopback TCP by default, or a
Unix socket (`curl --unix-socket PATH http://engine/metrics`). Each request renders the
current values of its EngineMetrics on the server's own thread: reading the hook counters
takes no lock, so a scrape never blocks the engine loop. The sidecar (`sources/engine`) and
Prometheus read this page exactly as they read vLLM's or SGLang's /metrics.

The endpoint reads through the public `SampleReader` protocol (`EngineMetrics` is one), so it
knows nothing of the hooks' internals.

Fork: a forked child does not serve. The child's copy of a running endpoint is closed there
at once (its listening socket is the parent's, and the thread that served it did not survive
the fork); the parent's endpoint is untouched, `close()` in the child returns at once, and a
child that wants an endpoint of its own calls `serve()` again (`os.register_at_fork`, as the
OpenTelemetry SDK restarts its threads; a child serving the parent's socket would answer
scrapes of the parent's series with its own copy of the counters).
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
from typing import Any, Protocol, runtime_checkable

from ..promtext import CONTENT_TYPE, render_samples
from ..samples import Sample

__all__ = ["MetricsEndpoint", "SampleReader", "serve"]

log = logging.getLogger("gpumetrics.hooks")


@runtime_checkable
class SampleReader(Protocol):
    """What an endpoint renders: one (engine, model)'s samples. `collect()` may raise (the
    endpoint answers 500 and logs it); `EngineMetrics` is a SampleReader."""

    @property
    def engine(self) -> str: ...

    @property
    def model(self) -> str: ...

    def collect(self) -> Iterable[Sample]: ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._reply(404, b"not found; try /metrics\n", "text/plain; charset=utf-8")
            return
        metrics = self.server.metrics if isinstance(self.server, _Serving) else ()
        try:
            body = render_samples(s for m in metrics for s in m.collect())
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
    """What every server here carries: the readers it renders."""

    metrics: tuple[SampleReader, ...] = ()


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
        server: socketserver.TCPServer,
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
        self._closed = False
        _track(self)
        self._thread.start()

    @property
    def closed(self) -> bool:
        """True once closed (here, or by a fork: see the module docstring)."""
        return self._closed

    def close(self) -> None:
        """Stop serving, close the socket (remove the Unix socket file). Idempotent."""
        if self._closed:
            return
        self._closed = True
        _untrack(self)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)
        if self.unix_socket is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_socket)

    def _abandon_in_child(self) -> None:
        """After fork, in the child: close this process's copy of the listening socket and
        mark the endpoint closed, without `shutdown()` (it would wait forever for a serving
        thread the child does not have) and without unlinking the parent's Unix socket."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._server.socket.close()

    def __enter__(self) -> MetricsEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.unix_socket if self.unix_socket is not None else self.url
        return f"MetricsEndpoint({where!r})"


_live: set[MetricsEndpoint] = set()
_live_lock = threading.Lock()
_fork_hook = False


def _track(endpoint: MetricsEndpoint) -> None:
    global _fork_hook  # noqa: PLW0603 - registered once per process, on first use
    with _live_lock:
        if not _fork_hook and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _fork_hook = True
        _live.add(endpoint)


def _untrack(endpoint: MetricsEndpoint) -> None:
    with _live_lock:
        _live.discard(endpoint)


def _after_fork_in_child() -> None:
    global _live_lock  # noqa: PLW0603 - a lock held by another thread at fork stays held
    _live_lock = threading.Lock()
    endpoints = list(_live)
    _live.clear()
    for endpoint in endpoints:
        endpoint._abandon_in_child()


def serve(
    metrics: SampleReader | Iterable[SampleReader],
    *,
    address: str = "127.0.0.1",
    port: int = 0,
    unix_socket: str | None = None,
) -> MetricsEndpoint:
    """Serve GET /metrics for one or several EngineMetrics (any `SampleReader`; 404 for any
    other path).

    TCP on `address`:`port` (loopback by default; port 0 picks a free port, read it from
    `.port`), or a Unix socket at `unix_socket` (a stale socket file left by a dead process
    is replaced). Set-up errors raise: OSError when the address is taken, ValueError when two
    EngineMetrics share an (engine, model) pair (their series would collide).
    """
    group: tuple[SampleReader, ...] = (
        (metrics,) if isinstance(metrics, SampleReader) else tuple(metrics)
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
