"""Basic auth: the dummy-hash path for unknown users, the verified cache, per-client failed-login
buckets (bounded), > 72-byte passwords, malformed hashes; end to end with real bcrypt."""

from __future__ import annotations

import base64
import http.client
import socket
from collections.abc import Iterator

import bcrypt
import pytest

from gpumetrics import catalog
from gpumetrics.config import WebConfig
from gpumetrics.errors import ConfigError
from gpumetrics.export.http.auth import Attempt, BasicAuth, Outcome, client_key
from gpumetrics.export.prometheus import PrometheusEndpoint
from gpumetrics.export.server import MetricsServer
from gpumetrics.samples import Snapshot

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
SNAPSHOT = Snapshot(0.0, (catalog.gpu.GPU_POWER.sample(1.0, "0", "GPU-0", "NVIDIA H200"),))


def _header(user: str, password: str | bytes) -> str:
    raw = password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(user.encode() + b":" + raw).decode()


class _Recorder:
    """bcrypt.checkpw, recording which hash each call tested."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.hashes.append(hashed)
        return bcrypt.checkpw(password, hashed)


def _run(auth: BasicAuth, header: str | None, client: str = "10.0.0.1") -> Outcome:
    outcome, attempt = auth.precheck(header, client)
    if outcome is Outcome.VERIFY:
        assert isinstance(attempt, Attempt)
        return Outcome.ALLOW if auth.verify(attempt) else Outcome.DENY
    return outcome


def test_unknown_users_cost_a_bcrypt_check_against_the_dummy_hash() -> None:
    recorder = _Recorder()
    auth = BasicAuth({"prometheus": HASH}, checkpw=recorder)
    assert auth.dummy_hash.startswith(b"$2b$04$")  # the same cost as the user's hash
    assert _run(auth, _header("root", "s3cret")) is Outcome.DENY
    assert recorder.hashes == [auth.dummy_hash]
    assert _run(auth, _header("prometheus", "guess")) is Outcome.DENY
    assert recorder.hashes[-1] == HASH.encode()
    assert _run(auth, _header("prometheus", "s3cret")) is Outcome.ALLOW
    assert _run(auth, _header("prometheus", "s3cret")) is Outcome.ALLOW  # cached
    assert len(recorder.hashes) == 3


def test_malformed_headers_and_long_passwords_are_denied_without_bcrypt() -> None:
    recorder = _Recorder()
    auth = BasicAuth({"prometheus": HASH}, checkpw=recorder)
    long = b"s3cret" + b"x" * 70  # bcrypt would silently look at the first 72 bytes only
    for header in (None, "Bearer x", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()):
        assert _run(auth, header) is Outcome.DENY
    assert _run(auth, _header("prometheus", long)) is Outcome.DENY
    assert recorder.hashes == []


def test_each_client_has_a_failed_login_budget_refilled_over_time() -> None:
    now = [0.0]
    auth = BasicAuth({"u": HASH}, burst=3, refill_per_s=0.5, clock=lambda: now[0])
    outcomes = [_run(auth, _header("u", "wrong"), "10.0.0.1") for _ in range(5)]
    assert outcomes == [Outcome.DENY] * 3 + [Outcome.LIMITED] * 2
    assert _run(auth, _header("u", "s3cret"), "10.0.0.1") is Outcome.LIMITED
    assert _run(auth, _header("u", "s3cret"), "10.0.0.2") is Outcome.ALLOW  # another client
    assert _run(auth, _header("u", "s3cret"), "10.0.0.1") is Outcome.ALLOW  # now cached
    now[0] = 2.0  # one token back (0.5/s)
    assert _run(auth, _header("u", "wrong"), "10.0.0.1") is Outcome.DENY
    assert _run(auth, _header("u", "wrong"), "10.0.0.1") is Outcome.LIMITED


def test_client_buckets_are_bounded() -> None:
    auth = BasicAuth({"u": HASH}, max_clients=3)
    for i in range(10):
        auth.precheck(_header("u", "wrong"), f"10.0.0.{i}")
    assert auth.tracked_clients == 3


def test_client_keys() -> None:
    assert client_key("127.0.0.1") == "127.0.0.1"
    assert client_key("::ffff:10.1.2.3") == "10.1.2.3"
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff") == "2001:db8::/64"


@pytest.mark.parametrize("hashed", ["plaintext", "$2y$10$short", "$2y$99$" + "a" * 53])
def test_malformed_hashes_are_refused(hashed: str) -> None:
    with pytest.raises(ConfigError, match=r"basic_auth_users\.u"):
        BasicAuth({"u": hashed})


@pytest.fixture
def port() -> Iterator[int]:
    web = WebConfig(basic_auth_users={"prometheus": HASH})
    server = MetricsServer("127.0.0.1", 0, PrometheusEndpoint(lambda: SNAPSHOT).render, web=web)
    server.start()
    try:
        yield server.port
    finally:
        server.stop()


def _get(port: int, header: str | None, source: str = "127.0.0.1", path: str = "/metrics") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    conn.request("GET", path, headers={"Authorization": header} if header else {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status != 200 or path != "/metrics" or b"gpumetrics_gpu_power" in body
    return response.status


def test_end_to_end_statuses(port: int) -> None:
    assert _get(port, _header("root", "s3cret")) == 401  # unknown user
    assert _get(port, _header("prometheus", "guess")) == 401  # wrong password
    assert _get(port, _header("prometheus", b"s3cret" + b"x" * 70)) == 401  # > 72 bytes
    assert _get(port, None) == 401
    assert _get(port, None, path="/health") == 200  # probes need no credentials
    assert _get(port, None, path="/nope") == 401  # no path is probed for without credentials
    assert _get(port, _header("prometheus", "s3cret")) == 200


def test_a_hammering_client_is_limited_while_another_still_gets_in(port: int) -> None:
    try:
        socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0)).close()
    except OSError:
        pytest.skip("cannot bind 127.0.0.2 here")
    statuses = [_get(port, _header("prometheus", f"guess{i}")) for i in range(12)]
    assert statuses[:5] == [401] * 5  # the burst
    assert 429 in statuses[5:]
    assert _get(port, _header("prometheus", "s3cret"), source="127.0.0.2") == 200


def test_credentials_are_checked_before_any_body_is_read(port: int) -> None:
    head = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)  # the announced 100 MB never come
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 401 ")
    assert b"Connection: close" in reply
