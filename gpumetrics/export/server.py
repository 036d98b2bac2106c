"""The exporter's HTTP endpoint: /metrics, /health, /ready, with optional TLS, client
certificates and basic auth configured like Prometheus' `--web.config.file`.

One asyncio event loop on one thread serves every connection (`export/http/front.py`): a
connection cap that closes the longest-idle connection to admit a new scrape, header and idle
timeouts, a listen backlog of 1024, keep-alive, HEAD, gzip and OpenMetrics when asked.
/metrics only renders the cached snapshot (on a two-thread pool, concurrent identical scrapes
sharing one render), so a slow source never slows a scrape. An exception while rendering
becomes a 500 with a short message and a log line, never a dropped connection. /health and
/ready answer without credentials (for liveness and readiness probes; they reveal only
"ok"/"ready"), also when client certificates are required.
"""

from __future__ import annotations

import errno
import logging
import resource
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..config import WebConfig
from ..errors import GpumetricsError
from .http.app import App, RenderMetrics
from .http.auth import BasicAuth
from .http.front import BACKLOG, Front
from .http.tls import server_context

__all__ = ["ListenError", "MetricsServer", "PortInUseError", "RenderMetrics"]

log = logging.getLogger(__name__)

#: File descriptors kept free for everything else (engine scrapes, NVML, logs).
_FD_RESERVE = 64


class PortInUseError(GpumetricsError, OSError):
    """The listen address is taken by another process."""

    def __init__(self, address: str, port: int) -> None:
        super().__init__(
            f"cannot listen on {address}:{port}: address already in use "
            f"(another exporter running? pick another port with --port)"
        )


class ListenError(GpumetricsError, OSError):
    """The listen address cannot be bound (not an address of this host, a privileged port,
    an unresolvable name)."""

    def __init__(self, address: str, port: int, exc: OSError) -> None:
        if exc.errno == errno.EACCES:
            why = "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            why = "no interface of this machine has that address"
        elif exc.errno == errno.EAFNOSUPPORT:
            why = "this address family is not supported here"
        else:
            why = exc.strerror or str(exc)
        super().__init__(f"cannot listen on {address}:{port}: {why}")


def _listen(address: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv6 when the address has a colon; "::" also takes IPv4)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    dualstack = address == "::" and socket.has_dualstack_ipv6()
    try:
        return socket.create_server(
            (address, port), family=family, backlog=BACKLOG, dualstack_ipv6=dualstack
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(address, port) from exc
        raise ListenError(address, port, exc) from exc


def _connection_cap(wanted: int) -> int:
    """`wanted`, lowered so that open connections cannot exhaust RLIMIT_NOFILE."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft - _FD_RESERVE >= wanted:
        return wanted
    cap = max(8, soft - _FD_RESERVE)
    log.warning(
        "max_connections %d lowered to %d: the open-files limit (ulimit -n) is %d",
        wanted,
        cap,
        soft,
    )
    return cap


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
        web = web or WebConfig()
        context = server_context(web) if web.tls else None  # ConfigError before binding
        self.auth = BasicAuth(web.basic_auth_users)
        self._render_pool = ThreadPoolExecutor(2, thread_name_prefix="gpumetrics-render")
        self._auth_pool = ThreadPoolExecutor(1, thread_name_prefix="gpumetrics-bcrypt")
        app = App(render_metrics, ready, self.auth, self._render_pool, self._auth_pool)
        sock = _listen(address, port)
        self._port = int(sock.getsockname()[1])
        self.front = Front(sock, app, web, context, _connection_cap(web.max_connections))

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return self._port

    def start(self) -> None:
        self.front.start()

    def stop(self) -> None:
        """Stop serving (if started), close every connection and release the port; returns
        within about two seconds even with renders or bcrypt checks in flight."""
        self.front.stop(timeout=2.0)
        self._render_pool.shutdown(wait=False, cancel_futures=True)
        self._auth_pool.shutdown(wait=False, cancel_futures=True)
