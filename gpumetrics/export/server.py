"""The exporter's HTTP endpoint: /metrics, /health, /ready, with optional TLS, client
certificates and basic auth configured like Prometheus' `--web.config.file`.

Each request is served on its own thread; /metrics only renders the cached snapshot, so a
slow source never slows a scrape. An exception while rendering becomes a 500 with a short
message and a log line, never a dropped connection. The TLS handshake happens on the
request's thread, so a slow client cannot stall the accept loop. /health and /ready answer
without credentials (for liveness and readiness probes; they reveal only "ok"/"ready").
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..config import WebConfig
from ..errors import ConfigError, GpumetricsError
from ..extras import LazyModule

bcrypt = LazyModule("web", "basic auth (basic_auth_users in --web-config)")  # the web extra

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
        if path not in ("/health", "/ready") and not self.server.authorized(
            self.headers.get("Authorization")
        ):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="gpumetrics"')
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            body = b"unauthorized\n"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
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
        self,
        address: tuple[str, int],
        render_metrics: RenderMetrics,
        ready: Callable[[], bool],
        web: WebConfig,
    ) -> None:
        self.render_metrics = render_metrics
        self.ready = ready
        self._users = {u: h.encode() for u, h in web.basic_auth_users.items()}
        self._verified: dict[str, bytes] = {}  # user -> SHA-256 of a password bcrypt accepted
        self._tls = _tls_context(web) if web.tls else None
        super().__init__(address, _Handler)

    def authorized(self, header: str | None) -> bool:
        """Basic auth against bcrypt hashes. A verified password is remembered by its SHA-256,
        so bcrypt's deliberate slowness is paid once per password, not on every scrape."""
        if not self._users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        hashed = self._users.get(user)
        if hashed is None:
            return False
        digest = hashlib.sha256(password.encode()).digest()
        known = self._verified.get(user)
        if known is not None and hmac.compare_digest(known, digest):
            return True
        if bcrypt.checkpw(password.encode(), hashed):
            self._verified[user] = digest
            return True
        return False

    def finish_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        """Wrap the connection in TLS on the request's own thread, then serve it."""
        if self._tls is not None:
            request.settimeout(10.0)
            try:
                request = self._tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.debug("TLS handshake with %s failed: %s", client_address, exc)
                return
        super().finish_request(request, client_address)


def _tls_context(web: WebConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(web.cert_file), str(web.key_file))
        if web.client_ca_file is not None:
            context.load_verify_locations(str(web.client_ca_file))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError("tls_server_config", f"cannot load certificate or key: {exc}") from exc
    context.verify_mode = {
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
        "RequireAnyClientCert": ssl.CERT_REQUIRED,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    }.get(web.client_auth_type, ssl.CERT_NONE)
    return context


class MetricsServer:
    """Binds on construction (so a taken port fails fast), serves after `start()`."""

    def __init__(
        self,
        address: str,
        port: int,
        render_metrics: RenderMetrics,
        ready: Callable[[], bool] = lambda: True,
        web: WebConfig | None = None,
    ) -> None:
        try:
            self._server = _Server((address, port), render_metrics, ready, web or WebConfig())
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
