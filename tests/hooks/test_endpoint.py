"""The engine-side endpoint: GET /metrics on loopback TCP or a Unix socket, 404 elsewhere."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from gpumetrics.hooks import CONTENT_TYPE, EngineMetrics, SampleReader, serve
from gpumetrics.hooks._state import EngineState
from gpumetrics.samples import Sample


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("engine", timeout=10)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self._path)


def _get(conn: http.client.HTTPConnection, path: str = "/metrics") -> tuple[int, str, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, response.getheader("Content-Type") or "", body


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # A short path: Unix socket paths are limited to ~107 bytes (pytest's tmp_path can exceed).
    with tempfile.TemporaryDirectory(prefix="gmh") as path:
        yield Path(path)


def test_tcp_endpoint_serves_the_text_on_loopback() -> None:
    m = EngineMetrics("e0", "m0")
    m.record_eviction(5)
    with m.serve() as endpoint:
        assert endpoint.address == "127.0.0.1"
        assert endpoint.port > 0
        assert endpoint.url == f"http://127.0.0.1:{endpoint.port}/metrics"
        status, content_type, body = _get(http.client.HTTPConnection("127.0.0.1", endpoint.port))
        assert status == 200
        assert content_type == CONTENT_TYPE
        assert body == m.render_text()
        assert b'gpumetrics_engine_kv_cache_evicted_blocks_total{engine="e0",model="m0"} 5' in body
        m.record_eviction()  # the page is live
        _, _, body = _get(http.client.HTTPConnection("127.0.0.1", endpoint.port))
        assert b'_evicted_blocks_total{engine="e0",model="m0"} 6' in body
        for path in ("/", "/metricsx", "/health"):
            status, _, _ = _get(http.client.HTTPConnection("127.0.0.1", endpoint.port), path)
            assert status == 404
        status, _, _ = _get(http.client.HTTPConnection("127.0.0.1", endpoint.port), "/metrics?x=1")
        assert status == 200


def test_one_endpoint_for_several_engines() -> None:
    a, b = EngineMetrics("a", "m0"), EngineMetrics("b", "m0")
    with serve([a, b]) as endpoint:
        _, _, body = _get(http.client.HTTPConnection("127.0.0.1", endpoint.port))
    assert body.count(b"# TYPE gpumetrics_engine_steps_total counter") == 1
    assert b'engine="a"' in body
    assert b'engine="b"' in body


def test_duplicate_engine_model_pairs_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        serve([EngineMetrics("a", "m"), EngineMetrics("a", "m")])


def test_a_taken_port_raises_at_setup() -> None:
    with EngineMetrics("e0", "m0").serve() as endpoint, pytest.raises(OSError, match="in use"):
        serve(EngineMetrics("e1", "m0"), port=endpoint.port)


def test_rendering_failure_is_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: EngineState) -> None:
        raise RuntimeError("broken")

    with EngineMetrics("e0", "m0").serve() as endpoint:
        monkeypatch.setattr(EngineState, "collect", boom)
        status, _, _ = _get(http.client.HTTPConnection("127.0.0.1", endpoint.port))
    assert status == 500


def test_close_is_idempotent_and_stops_serving() -> None:
    endpoint = EngineMetrics("e0", "m0").serve()
    endpoint.close()
    endpoint.close()
    with pytest.raises(ConnectionRefusedError):
        _get(http.client.HTTPConnection("127.0.0.1", endpoint.port))


def test_unix_socket_endpoint(sock_dir: Path) -> None:
    path = str(sock_dir / "m.sock")
    m = EngineMetrics("e0", "m0")
    with m.serve(unix_socket=path) as endpoint:
        assert endpoint.port == 0
        assert endpoint.unix_socket == path
        status, content_type, body = _get(_UnixConnection(path))
        assert status == 200
        assert content_type == CONTENT_TYPE
        assert body == m.render_text()
        with pytest.raises(OSError, match="serving on this socket"):  # in use: kept
            serve(EngineMetrics("e1", "m0"), unix_socket=path)
    assert not os.path.exists(path)  # removed on close


def test_stale_unix_socket_is_replaced_but_other_files_are_not(sock_dir: Path) -> None:
    path = str(sock_dir / "stale.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # the file stays, nobody listens
    with EngineMetrics("e0", "m0").serve(unix_socket=path):
        status, _, _ = _get(_UnixConnection(path))
        assert status == 200
    regular = sock_dir / "file"
    regular.write_text("x")
    with pytest.raises(FileExistsError):
        EngineMetrics("e0", "m0").serve(unix_socket=str(regular))
    assert regular.read_text() == "x"


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        endpoint = EngineMetrics("e0", "m0").serve("::1")
    except OSError as exc:
        pytest.skip(f"IPv6 loopback unavailable: {exc}")
    with endpoint:
        assert endpoint.url == f"http://[::1]:{endpoint.port}/metrics"
        status, _, _ = _get(http.client.HTTPConnection("::1", endpoint.port))
        assert status == 200


class _Fixed:
    """A SampleReader that is not EngineMetrics: the endpoint reads only the protocol."""

    engine, model = "custom", "m0"

    def collect(self) -> tuple[Sample, ...]:
        return (Sample("gpumetrics_engine_preemptions_total", ("custom", "m0"), 7.0),)


def test_the_endpoint_serves_any_sample_reader() -> None:
    assert isinstance(_Fixed(), SampleReader)
    with serve(_Fixed()) as endpoint:
        status, _, body = _get(http.client.HTTPConnection("127.0.0.1", endpoint.port))
    assert status == 200
    assert b'gpumetrics_engine_preemptions_total{engine="custom",model="m0"} 7.0' in body


def _in_child(write_fd: int, check: Callable[[], bytes]) -> NoReturn:
    """Run `check` in a forked child, send its answer to the parent, and exit at once."""
    signal.alarm(20)  # a child that hangs (close() waiting on a dead thread) dies instead
    try:
        answer = check()
    except BaseException as exc:
        answer = f"error: {exc!r}".encode()
    os.write(write_fd, answer)
    os._exit(0)


def _fork(check: Callable[[], bytes]) -> bytes:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _in_child(write_fd, check)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, answer
    return answer


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_serve_and_can_start_its_own(sock_dir: Path) -> None:
    m = EngineMetrics("e0", "m0")
    path = str(sock_dir / "parent.sock")
    with m.serve() as tcp, m.serve(unix_socket=path) as unix:

        def child() -> bytes:
            closed = tcp.closed and unix.closed
            tcp.close()  # returns at once: no shutdown() waiting on the parent's thread
            unix.close()
            m.record_preemption(5)  # the child's own copy of the counters
            with m.serve() as own:
                status, _, body = _get(http.client.HTTPConnection("127.0.0.1", own.port))
            served = status == 200 and b"preemptions_total" in body
            return b"ok" if closed and served else f"{closed=} {served=}".encode()

        assert _fork(child) == b"ok"
        # The parent's endpoints still serve, its Unix socket file is still there, and the
        # child's counters never reached the parent.
        assert not tcp.closed
        assert os.path.exists(path)
        _, _, body = _get(http.client.HTTPConnection("127.0.0.1", tcp.port))
        assert b'gpumetrics_engine_preemptions_total{engine="e0",model="m0"} 0' in body
        status, _, _ = _get(_UnixConnection(path))
        assert status == 200
