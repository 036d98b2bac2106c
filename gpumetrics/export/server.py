"""The exporter's HTTP endpoint: /metrics, /health, /ready. Standard library only.

Each request is served on its own thread; /metrics only renders the cached snapshot, so a
slow source never slows a scrape. An exception while rendering becomes a 500 with a short
message and a log line, never a dropped connection.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..errors import GpumetricsError

__all__ = ["MetricsServer", "PortInUseError", "RenderMetrics"]

log = logging.getLogger(__name__)

#: Renders the metrics page for an Accept header: (body, content type).
RenderMetrics = Callable[[str | None], tuple[bytes, str]]


class PortInUseError(GpumetricsError, OSError):
    """The listen address is taken by another process."""

    def __init__(self, address: str, port: int) -> None:
        super().__init__(
            f"cannot listen on {address}:{port}: address already in use "
            f"(another exporter running? pick another port with --port)"
        )


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                body, content_type = self.server.render_metrics(self.headers.get("Accept"))
            except Exception:
                log.exception("rendering /metrics failed")
                self._reply(500, b"error rendering metrics; see the exporter's log\n")
                return
            self._reply(200, body, content_type)
        elif path == "/health":
            self._reply(200, b"ok\n")
        elif path == "/ready":
            if self.server.ready():
                self._reply(200, b"ready\n")
            else:
                self._reply(503, b"not ready: first sampling cycle not finished\n")
        elif path == "/":
            self._reply(
                200,
                b'<html><body><a href="/metrics">/metrics</a></body></html>\n',
                "text/html; charset=utf-8",
            )
        else:
            self._reply(404, b"not found\n")

    def _reply(
        self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client hanging up mid-request is routine; anything else is logged once."""
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def __init__(
        self, address: tuple[str, int], render_metrics: RenderMetrics, ready: Callable[[], bool]
    ) -> None:
        self.render_metrics = render_metrics
        self.ready = ready
        super().__init__(address, _Handler)


class MetricsServer:
    """Binds on construction (so a taken port fails fast), serves after `start()`."""

    def __init__(
        self,
        address: str,
        port: int,
        render_metrics: RenderMetrics,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        try:
            self._server = _Server((address, port), render_metrics, ready)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(address, port) from exc
            raise
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gpumetrics-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (if started) and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
