"""What the front answers: probes, credentials, /metrics (gzip, OpenMetrics), errors.

Order per request: probes (/health, /ready) answer without credentials; every other path
needs the client certificate when one is required, then basic auth (checked from the head
alone: a body is never read), then the method (GET and HEAD, else 405), then the path (404).

Every 401 and 429 is held for `tarpit_s` (an asyncio sleep: no CPU, no thread) before it is
sent, and the connection counts as evictable meanwhile: a client hammering wrong passwords
gets about one answer per connection per second instead of thousands, so it cannot keep the
event loop busy, and its held connections never take the slot a new scrape needs.

/metrics renders on a small thread pool so the event loop keeps accepting and timing out
connections meanwhile; requests that arrive while the same page (same Accept header, same
encoding) is being rendered share that render instead of queueing their own.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from .auth import BasicAuth, Outcome
from .request import Request, Response, accepts_gzip

__all__ = ["App", "Peer", "RenderMetrics"]

log = logging.getLogger(__name__)

#: Renders the metrics page for an Accept header: (body, content type).
RenderMetrics = Callable[[str | None], tuple[bytes, str]]

#: bcrypt checks queued or running at once, across all clients; beyond it, 429.
MAX_PENDING_VERIFICATIONS = 4
#: Seconds a 401 or 429 answer is held before it is sent (the tarpit).
TARPIT_S = 1.0

_PROBES = ("/health", "/ready")
_UNAUTHORIZED = Response(
    401, b"unauthorized\n", headers=(("WWW-Authenticate", 'Basic realm="gpumetrics"'),)
)
_LIMITED = Response(429, b"too many failed logins; retry later\n", headers=(("Retry-After", "2"),))


class Peer(Protocol):
    """What the app needs to know about the connection a request came on."""

    @property
    def client(self) -> str: ...

    @property
    def cert_problem(self) -> str | None: ...

    def tarpit(self, seconds: float) -> Awaitable[None]:
        """Wait `seconds` with the connection evictable (closed first when the cap is hit)."""
        ...


class _RenderError(Exception):
    """Rendering failed (already logged)."""


class App:
    """Routes requests; `render_pool` runs renders, `auth_pool` runs bcrypt checks."""

    def __init__(
        self,
        render_metrics: RenderMetrics,
        ready: Callable[[], bool],
        auth: BasicAuth,
        render_pool: ThreadPoolExecutor,
        auth_pool: ThreadPoolExecutor,
        tarpit_s: float = TARPIT_S,
    ) -> None:
        self._render_metrics = render_metrics
        self._ready = ready
        self._auth = auth
        self._render_pool = render_pool
        self._auth_pool = auth_pool
        self._tarpit_s = tarpit_s
        self._pending_verifications = 0
        self._renders: dict[tuple[str | None, bool], asyncio.Future[tuple[bytes, str]]] = {}

    async def handle(self, request: Request, peer: Peer) -> Response:
        if request.path not in _PROBES:
            if peer.cert_problem is not None:
                return Response(403, f"forbidden: {peer.cert_problem}\n".encode())
            denied = await self._authenticate(request, peer)
            if denied is not None:
                await peer.tarpit(self._tarpit_s)
                return denied
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"method not allowed\n", headers=(("Allow", "GET, HEAD"),))
        if request.path == "/metrics":
            return await self._metrics(request)
        if request.path == "/health":
            return Response(200, b"ok\n")
        if request.path == "/ready":
            if self._ready():
                return Response(200, b"ready\n")
            return Response(503, b"not ready: first sampling cycle not finished\n")
        if request.path == "/":
            page = b'<html><body><a href="/metrics">/metrics</a></body></html>\n'
            return Response(200, page, "text/html; charset=utf-8")
        return Response(404, b"not found\n")

    async def _authenticate(self, request: Request, peer: Peer) -> Response | None:
        """None when the request may proceed, else the 401 or 429 to answer."""
        outcome, attempt = self._auth.precheck(request.headers.get("authorization"), peer.client)
        if outcome is Outcome.VERIFY and attempt is not None:
            if self._pending_verifications >= MAX_PENDING_VERIFICATIONS:
                return _LIMITED
            self._pending_verifications += 1
            try:
                loop = asyncio.get_running_loop()
                ok = await loop.run_in_executor(self._auth_pool, self._auth.verify, attempt)
            finally:
                self._pending_verifications -= 1
            outcome = Outcome.ALLOW if ok else Outcome.DENY
        if outcome is Outcome.ALLOW:
            return None
        return _LIMITED if outcome is Outcome.LIMITED else _UNAUTHORIZED

    async def _metrics(self, request: Request) -> Response:
        compress = accepts_gzip(request.headers.get("accept-encoding"))
        key = (request.headers.get("accept"), compress)
        future = self._renders.get(key)
        if future is None:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._render_pool, self._render, *key)
            self._renders[key] = future
            future.add_done_callback(lambda _: self._renders.pop(key, None))
        try:
            body, content_type = await asyncio.shield(future)
        except _RenderError:
            return Response(500, b"error rendering metrics; see the exporter's log\n")
        headers = [("Vary", "Accept, Accept-Encoding")]
        if compress:
            headers.append(("Content-Encoding", "gzip"))
        return Response(200, body, content_type, tuple(headers))

    def _render(self, accept: str | None, compress: bool) -> tuple[bytes, str]:
        try:
            body, content_type = self._render_metrics(accept)
        except Exception as exc:
            log.exception("rendering /metrics failed")
            raise _RenderError from exc
        if compress:
            body = gzip.compress(body, compresslevel=6, mtime=0)
        return body, content_type
