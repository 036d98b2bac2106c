"""Routing without sockets: probes, 405/404, a render error as 500, and concurrent scrapes of
the same page sharing one render."""

from __future__ import annotations

import asyncio
import base64
import gzip
import threading
from concurrent.futures import ThreadPoolExecutor

from gpumetrics.export.http.app import App
from gpumetrics.export.http.auth import BasicAuth
from gpumetrics.export.http.request import Request


class _Peer:
    client = "10.0.0.1"
    cert_problem: str | None = None

    def __init__(self) -> None:
        self.held: list[float] = []

    async def tarpit(self, seconds: float) -> None:
        self.held.append(seconds)


def _request(path: str, method: str = "GET", **headers: str) -> Request:
    return Request(method, path, "HTTP/1.1", headers, keep_alive=True, has_body=False)


def _app(render, ready=lambda: True) -> tuple[App, ThreadPoolExecutor]:  # type: ignore[no-untyped-def]
    pool = ThreadPoolExecutor(2)
    return App(render, ready, BasicAuth({}), pool, pool), pool


def test_routes() -> None:
    app, pool = _app(lambda accept: (b"page\n", "text/plain"), ready=lambda: False)

    async def statuses() -> list[int]:
        paths = ["/metrics", "/health", "/ready", "/", "/nope"]
        answers = [await app.handle(_request(p), _Peer()) for p in paths]
        answers.append(await app.handle(_request("/metrics", "DELETE"), _Peer()))
        return [a.status for a in answers]

    assert asyncio.run(statuses()) == [200, 200, 503, 200, 404, 405]
    pool.shutdown()


def test_a_required_certificate_guards_all_but_the_probes() -> None:
    app, pool = _app(lambda accept: (b"page\n", "text/plain"))
    peer = _Peer()
    peer.cert_problem = "a client certificate is required"

    async def statuses() -> list[int]:
        return [(await app.handle(_request(p), peer)).status for p in ("/metrics", "/health")]

    assert asyncio.run(statuses()) == [403, 200]
    pool.shutdown()


def test_denied_and_limited_answers_are_held_in_the_tarpit_and_allowed_ones_are_not() -> None:
    checks: list[bytes] = []

    def checkpw(password: bytes, hashed: bytes) -> bool:
        checks.append(password)
        return password == b"right"

    hashed = "$2b$04$" + "a" * 53
    auth = BasicAuth({"u": hashed}, burst=1, refill_per_s=0.0, checkpw=checkpw)
    pool = ThreadPoolExecutor(1)
    app = App(lambda accept: (b"page\n", "text/plain"), lambda: True, auth, pool, pool, 0.25)

    def basic(password: str) -> str:
        return "Basic " + base64.b64encode(f"u:{password}".encode()).decode()

    async def run() -> list[tuple[int, list[float]]]:
        answers = []
        for header in (None, basic("wrong"), basic("right"), basic("right")):
            peer = _Peer()
            headers = {} if header is None else {"authorization": header}
            response = await app.handle(_request("/metrics", **headers), peer)
            answers.append((response.status, peer.held))
        probe = _Peer()
        answers.append(((await app.handle(_request("/health"), probe)).status, probe.held))
        return answers

    # no credentials: 401 held; wrong password: bcrypt, 401 held; the budget (1) is spent,
    # so the right password is 429 held without bcrypt work... until refilled, which never
    # happens here; the probe needs no credentials and is not held.
    assert asyncio.run(run()) == [
        (401, [0.25]),
        (401, [0.25]),
        (429, [0.25]),
        (429, [0.25]),
        (200, []),
    ]
    assert checks == [b"wrong"]
    pool.shutdown()


def test_a_render_error_is_a_500_without_details() -> None:
    def explode(accept: str | None) -> tuple[bytes, str]:
        raise RuntimeError("secret detail")

    app, pool = _app(explode)
    response = asyncio.run(app.handle(_request("/metrics"), _Peer()))
    assert response.status == 500
    assert b"secret" not in response.body
    pool.shutdown()


def test_concurrent_identical_scrapes_share_one_render() -> None:
    calls: list[str | None] = []
    release = threading.Event()

    def render(accept: str | None) -> tuple[bytes, str]:
        calls.append(accept)
        release.wait(10)
        return b"page\n" * 100, "text/plain"

    app, pool = _app(render)

    async def scrape() -> list[bytes]:
        tasks = [
            asyncio.ensure_future(
                app.handle(_request("/metrics", **{"accept-encoding": "gzip"}), _Peer())
            )
            for _ in range(5)
        ]
        await asyncio.sleep(0.2)  # all five are waiting on the first render
        release.set()
        return [(await task).body for task in tasks]

    bodies = asyncio.run(scrape())
    assert calls == [None]
    assert all(gzip.decompress(body) == b"page\n" * 100 for body in bodies)
    pool.shutdown()
