"""The HTTP/1.1 front: one asyncio event loop on one thread serves every connection.

Idle or slow clients cannot starve scrapes:
- at most `max_connections` connections are open; a new one beyond that closes the connection
  that has been idle longest (a keep-alive connection between requests, or one that has sent
  nothing yet), so a new scrape always gets a slot; connections held in the auth tarpit (a
  401/429 waiting to be sent) are closed before any idle one; when none is idle or tarpitted
  the new one is refused at once (503 on plain HTTP, closed on TLS);
- a request's head must arrive within `read_header_timeout_s` of its first byte (or of the
  connection, for the first request; the TLS handshake shares that budget), so a slowloris
  client is cut off; a keep-alive connection idle for `idle_timeout_s` is closed; a client
  that stops reading a response is closed after WRITE_TIMEOUT_S;
- the listen backlog is BACKLOG, so bursts of scrapers queue in the kernel, not in SYN retries.
Each connection costs a few kilobytes and no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping

from ...web_config import WebConfig
from .app import App
from .auth import client_key
from .request import MAX_HEAD_BYTES, BadRequestError, Request, Response, encode_head, parse_head
from .tls import client_cert_problem

__all__ = ["BACKLOG", "WRITE_TIMEOUT_S", "Front"]

log = logging.getLogger(__name__)

#: listen(2) backlog (the kernel caps it at net.core.somaxconn).
BACKLOG = 1024
#: Seconds a client may take to read a response before it is closed.
WRITE_TIMEOUT_S = 30.0
#: Seconds a refused or malformed connection is drained before it is closed.
LINGER_S = 1.0
_WRITE_HIGH_WATER = 256 * 1024
#: Connections accepted per wake-up of the event loop.
_BATCH = 16
_RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_last_resource_warning = [0.0]


def _quiet_resource_errors(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """Out of file descriptors while accepting: one warning per 10 s, not a traceback per
    attempt (asyncio retries the accept a second later)."""
    exc = context.get("exception")
    if isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS:
        now = time.monotonic()
        if now - _last_resource_warning[0] >= 10.0:
            _last_resource_warning[0] = now
            log.warning("cannot accept connections for a second: %s", exc.strerror)
        return
    loop.default_exception_handler(context)


class Front:
    """Owns the event-loop thread, the listening socket's server and the connection table."""

    def __init__(
        self,
        sock: socket.socket,
        app: App,
        web: WebConfig,
        ssl_context: ssl.SSLContext | None,
        max_connections: int,
    ) -> None:
        self.app = app
        self.web = web
        self.ssl_context = ssl_context
        self.headers: Mapping[str, str] = dict(web.headers)
        self.max_connections = max_connections
        self._sock = sock
        self._open: dict[_Connection, None] = {}
        self._idle: OrderedDict[_Connection, None] = OrderedDict()
        self._tarpitted: OrderedDict[_Connection, None] = OrderedDict()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self.evicted = 0  # connections closed to make room (for tests and benchmarks)
        self.refused = 0  # connections refused with no idle one to close

    # -- lifecycle (called from other threads) --
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gpumetrics-http", daemon=True)
        self._thread.start()
        self._started.wait(10.0)

    def stop(self, timeout: float = 2.0) -> None:
        """Close the listener and every connection; returns within about `timeout` seconds."""
        if self._thread is None:
            self._sock.close()
            return
        with contextlib.suppress(RuntimeError):  # RuntimeError: the loop is already closed
            self._loop.call_soon_threadsafe(self._shutdown)  # runs once the loop does
        self._thread.join(timeout)

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            # asyncio accepts up to `backlog` sockets per wake-up before any connection_made
            # runs, so a burst could outrun the cap (EMFILE): accept in small batches, then
            # give the kernel queue its full length again (listen(2) may be called twice).
            self._server = loop.run_until_complete(
                loop.create_server(lambda: _Connection(self), sock=self._sock, backlog=_BATCH)
            )
            self._sock.listen(BACKLOG)
            loop.set_exception_handler(_quiet_resource_errors)
        finally:
            self._started.set()
        try:
            loop.run_forever()
        finally:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=1.0))
            loop.close()

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._open):
            connection.abort()
        self._loop.call_soon(self._loop.stop)  # after the aborts' connection_lost callbacks

    # -- the connection table (event-loop thread only) --
    @property
    def open_connections(self) -> int:
        return len(self._open)

    def admit(self, connection: _Connection) -> bool:
        """Make room (close the oldest tarpitted, else idle, connection) or refuse."""
        if len(self._open) >= self.max_connections:
            victims = self._tarpitted or self._idle
            if not victims:
                self.refused += 1
                return False
            oldest = next(iter(victims))
            self.evicted += 1
            oldest.evict()
        self._open[connection] = None
        return True

    def set_idle(self, connection: _Connection, idle: bool) -> None:
        if idle:
            self._idle[connection] = None
            self._idle.move_to_end(connection)
        else:
            self._idle.pop(connection, None)

    def set_tarpitted(self, connection: _Connection, held: bool) -> None:
        if held and connection in self._open:
            self._tarpitted[connection] = None
        else:
            self._tarpitted.pop(connection, None)

    @property
    def tarpitted_connections(self) -> int:
        return len(self._tarpitted)

    def forget(self, connection: _Connection) -> None:
        self._open.pop(connection, None)
        self._idle.pop(connection, None)
        self._tarpitted.pop(connection, None)


class _Connection(asyncio.Protocol):
    """One client connection: head parsing, timeouts, keep-alive, write back-pressure."""

    def __init__(self, front: Front) -> None:
        self._front = front
        self._loop = front._loop
        self._transport: asyncio.BaseTransport | None = None
        self._buffer = bytearray()
        self._state = "new"  # idle | reading | busy | closed
        self._timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.client = "?"
        self.cert_problem: str | None = None
        self._eof = False

    # -- asyncio.Protocol --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.client = client_key(str(peer[0])) if peer else "?"
        if not self._front.admit(self):
            self._state = "closed"
            self._refuse(transport)
            return
        front = self._front
        if front.ssl_context is not None:
            assert isinstance(transport, asyncio.Transport)
            transport.pause_reading()  # the handshake reads first
            self._become_idle(front.web.read_header_timeout_s)
            self._task = self._loop.create_task(self._handshake(transport, front.ssl_context))
        else:
            self._become_idle(front.web.read_header_timeout_s)

    def data_received(self, data: bytes) -> None:
        if self._state == "closed":
            return
        self._buffer += data
        if self._state == "idle":
            self._state = "reading"
            self._front.set_idle(self, False)
            self._arm(self._front.web.read_header_timeout_s)
        if self._state == "reading":
            self._next_request()
        elif len(self._buffer) > MAX_HEAD_BYTES and isinstance(self._transport, asyncio.Transport):
            self._transport.pause_reading()  # pipelined requests wait, bounded

    def eof_received(self) -> bool | None:
        self._eof = True
        if self._state == "busy" and self._front.ssl_context is None:
            return True  # finish the response, then close (TLS cannot half-close)
        self._close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = "closed"
        self._cancel_timers()
        self._front.forget(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def pause_writing(self) -> None:
        self._write_timer = self._loop.call_later(WRITE_TIMEOUT_S, self._timed_out, "write")

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    # -- called by the app --
    async def tarpit(self, seconds: float) -> None:
        """Hold this connection's (401/429) answer for `seconds`, evictable meanwhile."""
        self._front.set_tarpitted(self, True)
        try:
            await asyncio.sleep(seconds)
        finally:
            self._front.set_tarpitted(self, False)

    # -- called by the front --
    def evict(self) -> None:
        """Close this idle or tarpitted connection to make room for a new one."""
        log.debug("closing idle connection from %s to admit a new one", self.client)
        self._close()

    def abort(self) -> None:
        self._state = "closed"
        self._cancel_timers()
        self._front.forget(self)
        if self._transport is not None:
            self._transport.abort()  # type: ignore[attr-defined]

    # -- internals --
    async def _handshake(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        try:
            transport = await self._loop.start_tls(
                raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self._front.web.read_header_timeout_s,
            )
        except Exception as exc:  # any handshake failure ends this connection only
            log.debug("TLS handshake with %s failed: %s", self.client, exc)
            self.abort()
            raw.abort()
            return
        if transport is None or self._state == "closed":
            return
        self._transport = transport
        self.cert_problem = client_cert_problem(
            self._front.web, transport.get_extra_info("ssl_object")
        )

    def _refuse(self, transport: asyncio.BaseTransport) -> None:
        if self._front.ssl_context is None and isinstance(transport, asyncio.Transport):
            body = b"too many connections; retry later\n"
            response = Response(503, body, headers=(("Retry-After", "1"),))
            transport.write(encode_head(response, keep_alive=False, extra={}) + body)
        self._close(linger=True)

    def _next_request(self) -> None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 or end > MAX_HEAD_BYTES:
            if len(self._buffer) > MAX_HEAD_BYTES:
                self._reply_error(BadRequestError(431, "request head too large"))
            return
        head = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        self._state = "busy"
        self._cancel_timer()
        try:
            request = parse_head(head)
        except BadRequestError as exc:
            self._reply_error(exc)
            return
        self._task = self._loop.create_task(self._serve(request))

    async def _serve(self, request: Request) -> None:
        try:
            response = await self._front.app.handle(request, self)
        except Exception:
            log.exception("answering %s %s failed", request.method, request.path)
            response = Response(500, b"internal error; see the exporter's log\n")
        keep_alive = request.keep_alive and not request.has_body and not response.close
        self._write(response, keep_alive=keep_alive, head_only=request.method == "HEAD")

    def _reply_error(self, error: BadRequestError) -> None:
        self._state = "busy"
        self._cancel_timer()
        body = f"{error.problem}\n".encode()
        self._write(Response(error.status, body), keep_alive=False, head_only=False, linger=True)

    def _write(
        self, response: Response, *, keep_alive: bool, head_only: bool, linger: bool = False
    ) -> None:
        transport = self._transport
        if self._state == "closed" or not isinstance(transport, asyncio.WriteTransport):
            return
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        head = encode_head(response, keep_alive=keep_alive, extra=self._front.headers)
        body = b"" if head_only else response.body
        if len(body) > 65536:  # a large page goes out as is, not copied behind its head
            transport.write(head)
            transport.write(body)
        else:
            transport.write(head + body)
        if not keep_alive or self._eof:
            self._close(linger=linger)
            return
        self._become_idle(self._front.web.idle_timeout_s)
        if self._buffer:  # a pipelined request already arrived
            self.data_received(b"")
        if isinstance(transport, asyncio.ReadTransport) and not transport.is_reading():
            transport.resume_reading()

    def _become_idle(self, timeout: float) -> None:
        self._state = "idle"
        self._front.set_idle(self, True)
        self._arm(timeout)

    def _arm(self, seconds: float) -> None:
        self._cancel_timer()
        self._timer = self._loop.call_later(seconds, self._timed_out, self._state)

    def _timed_out(self, state: str) -> None:
        log.debug("closing connection from %s: %s timeout", self.client, state)
        if state == "write":
            self.abort()
        else:
            self._close()

    def _close(self, *, linger: bool = False) -> None:
        """Close gracefully (pending output is flushed first). With `linger`, after an error
        reply to a client that may still be sending: half-close and discard what arrives
        until its EOF (or LINGER_S), so the kernel does not answer unread bytes with a reset
        that destroys the reply before the client reads it."""
        self._state = "closed"
        self._cancel_timer()
        self._front.forget(self)
        transport = self._transport
        if transport is None:
            return
        if not isinstance(transport, asyncio.WriteTransport):
            transport.close()
            return
        if transport.get_write_buffer_size():
            self._loop.call_later(WRITE_TIMEOUT_S, transport.abort)  # a client not reading
        if linger and not self._eof and transport.can_write_eof():
            transport.write_eof()
            self._loop.call_later(LINGER_S, transport.close)
        else:
            transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _cancel_timers(self) -> None:
        self._cancel_timer()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
