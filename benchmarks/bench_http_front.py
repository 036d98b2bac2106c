"""The HTTP front under hostile clients (issue 13), on loopback, in one command.

    .venv/bin/python benchmarks/bench_http_front.py [--quick] [--json FILE] [--cases ...]

The exporter runs in its own process (`--serve`, 8 fake H200s through FakeNvml, the real
Sampler and PrometheusEndpoint), so client work does not share its GIL. Measured:
1. render: wall time of rendering /metrics from the cached snapshot in-process (classic
   text, its gzip, and OpenMetrics as Prometheus' default Accept header gets it), which is
   what each scrape costs the exporter;
2. idle: 1,000 idle TCP connections held open, then fresh scrapes one at a time: latency of
   each (target < 50 ms), with how many idle connections the front closed to admit them; and
   the issue's case side by side with the thread-per-connection server this front replaced
   (loaded from git at BASELINE): open-files limit 256, 300 idle connections, then scrapes;
3. concurrent: 200 keep-alive scrapers in lock-step rounds: per-request latency p50/p99
   (target p99 < 100 ms), without gzip, with gzip, and with gzip and Prometheus' Accept
   header (OpenMetrics);
4. auth: 16 clients sending wrong passwords as fast as they can (from one address, then from
   16 addresses), while a legitimate client with the right password scrapes every 50 ms:
   its p50/p99 (target p99 < 10 ms), and what the hammerers got (401 vs 429; every such
   answer is held 1 s in the tarpit).
The soft open-files limit is raised to the hard limit for the 1,000 connections.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

PASSWORD = "s3cret-scrape"
#: What Prometheus 2 sends by default: it prefers OpenMetrics 1.0.0.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "p50_ms": 1e3 * pick(0.50),
        "p99_ms": 1e3 * pick(0.99),
        "max_ms": 1e3 * ordered[-1],
        "n": len(ordered),
    }


#: The commit before this front: its thread-per-connection server is the baseline.
BASELINE = "5e2eea4"


def _baseline_server() -> type:
    """MetricsServer as it was at BASELINE (ThreadingHTTPServer), loaded from git."""
    import importlib.util  # noqa: PLC0415

    root = Path(__file__).resolve().parent.parent
    source = subprocess.check_output(
        ["git", "-C", str(root), "show", f"{BASELINE}:gpumetrics/export/server.py"], text=True
    )
    spec = importlib.util.spec_from_loader("gpumetrics.export._baseline_server", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "gpumetrics.export"
    exec(compile(source, f"{BASELINE}:server.py", "exec"), module.__dict__)
    return module.MetricsServer  # type: ignore[no-any-return]


def serve(mode: str, nofile: int) -> None:
    """Child process: 8 fake H200s, sampled once, served until stdin closes. `mode`: plain,
    auth (a bcrypt cost-10 user) or baseline (the old server); `nofile`: soft open-files
    limit (0: the hard limit)."""
    import bcrypt  # noqa: PLC0415

    from gpumetrics.config import WebConfig  # noqa: PLC0415
    from gpumetrics.export.prometheus import PrometheusEndpoint  # noqa: PLC0415
    from gpumetrics.export.server import MetricsServer  # noqa: PLC0415
    from gpumetrics.pipeline import Sampler  # noqa: PLC0415
    from gpumetrics.sources.nvml import NvmlSource  # noqa: PLC0415
    from gpumetrics.testing import FakeNvml, parse_fake_gpus  # noqa: PLC0415

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile or hard, hard))
    auth = mode == "auth"
    users = {"prometheus": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()}
    with FakeNvml(parse_fake_gpus("h200x8")):
        sampler = Sampler([NvmlSource()], interval=1.0)
        sampler.sample_once()
        endpoint = PrometheusEndpoint(sampler.snapshot)
        web = WebConfig(basic_auth_users=users if auth else {})
        if mode == "baseline":
            old = _baseline_server()("127.0.0.1", 0, endpoint.render, web=web)
            old.start()
            print(old.port, 0, flush=True)
            sys.stdin.read()
            print(json.dumps({"threads": threading.active_count()}))
            old.stop()
            return
        server = MetricsServer("127.0.0.1", 0, endpoint.render, web=web)
        server.start()
        print(server.port, server.front.max_connections, flush=True)
        sys.stdin.read()
        print(json.dumps({"evicted": server.front.evicted, "refused": server.front.refused}))
        server.stop()


def render_cost(repeats: int) -> dict[str, object]:
    from gpumetrics.export.prometheus import PrometheusEndpoint  # noqa: PLC0415
    from gpumetrics.pipeline import Sampler  # noqa: PLC0415
    from gpumetrics.sources.nvml import NvmlSource  # noqa: PLC0415
    from gpumetrics.testing import FakeNvml, parse_fake_gpus  # noqa: PLC0415

    with FakeNvml(parse_fake_gpus("h200x8")):
        sampler = Sampler([NvmlSource()], interval=1.0)
        sampler.sample_once()
        endpoint = PrometheusEndpoint(sampler.snapshot)
        plain, packed, om = [], [], []
        body = om_body = b""
        for _ in range(repeats):
            start = time.perf_counter()
            body, _ = endpoint.render(None)
            plain.append(time.perf_counter() - start)
            start = time.perf_counter()
            om_body, _ = endpoint.render(PROMETHEUS_ACCEPT)
            om.append(time.perf_counter() - start)
            start = time.perf_counter()
            zipped = gzip.compress(body, compresslevel=6, mtime=0)
            packed.append(time.perf_counter() - start)
    return {
        "render": _percentiles(plain),
        "gzip": _percentiles(packed),
        "openmetrics": _percentiles(om),
        "openmetrics_bytes": len(om_body),
        "bytes": len(body),
        "gzip_bytes": len(zipped),
    }


class _Child:
    def __init__(self, mode: str, nofile: int = 0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", f"{mode},{nofile}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        port, cap = self.process.stdout.readline().split()
        self.port, self.cap = int(port), int(cap)

    def finish(self) -> dict[str, int]:
        out, _ = self.process.communicate("", timeout=30)
        return dict(json.loads(out.strip().splitlines()[-1]))


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, header: str = ""
) -> tuple[int, int]:
    """One keep-alive GET /metrics: (status, body bytes)."""
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: b\r\n{header}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status, length


async def _scrape_once(port: int, header: str = "", source: str = "127.0.0.1") -> float:
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    status, _ = await _get(reader, writer, header)
    writer.close()
    assert status == 200, status
    return time.perf_counter() - start


async def idle_then_scrape(port: int, idle: int, scrapes: int) -> dict[str, object]:
    held = []
    refused = 0
    for _ in range(idle):
        try:  # a server that stops accepting leaves its small backlog full: connects time out
            held.append(socket.create_connection(("127.0.0.1", port), timeout=2.0))
        except OSError:
            refused += 1
            if refused >= 3:
                break
    await asyncio.sleep(0.5)
    times = []
    failed = 0
    for _ in range(scrapes):
        try:
            times.append(await asyncio.wait_for(_scrape_once(port), 5.0))
        except (OSError, TimeoutError, AssertionError, asyncio.IncompleteReadError):
            failed += 1
        await asyncio.sleep(0.02)
    closed = 0
    for sock in held:
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError, ConnectionResetError):
            closed += sock.recv(1) == b""
        sock.close()
    shown = _percentiles(times) if times else {}
    return {
        **shown,
        "failed": failed,
        "idle_held": len(held),
        "idle_connect_failed": refused,
        "idle_closed_by_server": closed,
    }


async def concurrent(port: int, clients: int, rounds: int, header: str = "") -> dict[str, object]:
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]
    times: list[float] = []

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        start = time.perf_counter()
        status, _ = await _get(reader, writer, header)
        assert status == 200, status
        times.append(time.perf_counter() - start)

    for _ in range(rounds):
        await asyncio.gather(*(one(r, w) for r, w in connections))
    for _, writer in connections:
        writer.close()
    return _percentiles(times)


async def hammer(port: int, hammerers: int, spread: bool, seconds: float) -> dict[int, int]:
    """Child process: `hammerers` clients sending wrong passwords back to back."""
    stop = time.monotonic() + seconds
    answers: dict[int, int] = {}

    async def one(i: int) -> None:
        source = f"127.0.1.{i + 1}" if spread else "127.0.0.1"
        n = 0
        while time.monotonic() < stop:
            n += 1
            bad = base64.b64encode(f"prometheus:wrong{i}-{n}".encode()).decode()
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(source, 0)
            )
            status, _ = await _get(reader, writer, f"Authorization: Basic {bad}\r\n")
            answers[status] = answers.get(status, 0) + 1
            writer.close()

    await asyncio.gather(*(one(i) for i in range(hammerers)))
    return answers


def _blocking_scrape(port: int, header: str) -> float:
    """One scrape on a fresh connection from 127.0.0.2 with plain sockets: seconds."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0)) as sock:
        sock.sendall(f"GET /metrics HTTP/1.1\r\nHost: b\r\n{header}\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.split(b" ", 2)[1] == b"200", head[:40]
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += sock.recv(262144)
    return time.perf_counter() - start


def hammered(port: int, hammerers: int, spread: bool, seconds: float) -> dict[str, object]:
    """A legitimate scraper (this process) while hammerers run in another process."""
    good = "Authorization: Basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
    _blocking_scrape(port, good + "\r\n")  # the one bcrypt check
    quiet = [_blocking_scrape(port, good + "\r\n") for _ in range(20)]
    flag = "spread" if spread else "one"
    child = subprocess.Popen(
        [sys.executable, __file__, "--hammer", f"{port},{hammerers},{flag},{seconds}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    times = []
    stop = time.monotonic() + seconds - 1.0
    while time.monotonic() < stop:
        times.append(_blocking_scrape(port, good + "\r\n"))
        time.sleep(0.05)
    out, _ = child.communicate(timeout=seconds + 30)
    answers = json.loads(out)
    return {"quiet": _percentiles(quiet), **_percentiles(times), "hammer_answers": answers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--hammer", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (~15 s)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--cases",
        default="idle300,idle1000,hammer",
        help="comma-separated subset of idle300, idle1000 (with the 200-scraper cases), hammer",
    )
    args = parser.parse_args()
    if args.serve:
        mode, nofile = args.serve.split(",")
        serve(mode, int(nofile))
        return
    if args.hammer:
        port, count, flag, seconds = args.hammer.split(",")
        answers = asyncio.run(hammer(int(port), int(count), flag == "spread", float(seconds)))
        print(json.dumps(answers))
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    quick = args.quick
    results: dict[str, object] = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nofile": [soft, hard],
    }
    cases = set(args.cases.split(","))
    results["render"] = render_cost(50 if quick else 200)
    for mode in (
        ("baseline", "plain") if "idle300" in cases else ()
    ):  # the case: nofile=256, 300 idle connections
        child = _Child(mode, nofile=256)
        results[f"idle_300_nofile_256_{mode}"] = asyncio.run(
            idle_then_scrape(child.port, 300, 10 if quick else 20)
        )
        results[f"idle_300_nofile_256_{mode}_counters"] = child.finish()
    if "idle1000" in cases:
        child = _Child("plain")
        results["max_connections"] = child.cap
        results["idle_1000"] = asyncio.run(idle_then_scrape(child.port, 1000, 20 if quick else 50))
        results["concurrent_200"] = asyncio.run(concurrent(child.port, 200, 5 if quick else 20))
        results["concurrent_200_gzip"] = asyncio.run(
            concurrent(child.port, 200, 5 if quick else 20, "Accept-Encoding: gzip\r\n")
        )
        results["concurrent_200_prometheus_accept_gzip"] = asyncio.run(
            concurrent(
                child.port,
                200,
                5 if quick else 20,
                f"Accept: {PROMETHEUS_ACCEPT}\r\nAccept-Encoding: gzip\r\n",
            )
        )
        results["front_counters"] = child.finish()
    for spread in (False, True) if "hammer" in cases else ():
        child = _Child("auth")
        key = "auth_hammer_16_addresses" if spread else "auth_hammer_1_address"
        results[key] = hammered(child.port, 16, spread, 4.0 if quick else 10.0)
        child.finish()
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
