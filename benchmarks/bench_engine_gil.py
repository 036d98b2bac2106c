"""How much an engine page delays the GPU sampler (issue 13: <= 50 ms for a 16 MiB page).

    .venv/bin/python benchmarks/bench_engine_gil.py [--seconds 8]

One process, as in `serve`: a Sampler runs the NVML source (FakeNvml h200x8) every 0.1 s and
an engine source every 1 s against an engine on 127.0.0.1 that serves a ~15.6 MB page of
330 k series with 330 k distinct label values. The NVML source is wrapped to record, per
cycle, how late it started against its schedule and how long it took (both wall time, so GIL
waits count). Three runs side by side: no engine, the engine with the default limits (the page
is refused after max_series lines), and the engine with the limits raised past the page (the
whole page parsed and mapped, as before the limits). Prints p50/p99/max of the GPU cycle's
delay = lateness + (duration - the no-engine median duration).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gpumetrics.pipeline import Sampler
from gpumetrics.samples import Collection
from gpumetrics.sources import Source
from gpumetrics.sources.engine import EngineConfig, EngineSource
from gpumetrics.sources.nvml import NvmlSource
from gpumetrics.testing import FakeNvml, parse_fake_gpus

GPU_INTERVAL = 0.1


class _Timed:
    """A Source recording (start lateness, duration) of each cycle, in seconds."""

    def __init__(self, inner: Source) -> None:
        self._inner = inner
        self.cycles: list[tuple[float, float]] = []
        self.cpu: list[float] = []
        """Thread CPU seconds of each cycle (what the cycle itself costs, load aside)."""
        self._due: float | None = None

    @property
    def name(self) -> str:
        return self._inner.name

    def collect(self, now: float) -> Collection:
        started, cpu = time.monotonic(), time.thread_time()
        due = started if self._due is None else self._due
        try:
            return self._inner.collect(now)
        finally:
            ended = time.monotonic()
            self.cycles.append((max(0.0, started - due), ended - started))
            self.cpu.append(time.thread_time() - cpu)
            self._due = max(due + GPU_INTERVAL, ended)

    def close(self) -> None:
        self._inner.close()


def _page() -> bytes:
    lines = ["# TYPE vllm:num_requests_running gauge"]
    lines += [f'vllm:num_requests_running{{model_name="m{i:06d}"}} 1' for i in range(330_000)]
    return ("\n".join(lines) + "\n").encode()


def _engine(body: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(seconds: float, engine: EngineConfig | None) -> tuple[_Timed, _Timed | None]:
    with FakeNvml(parse_fake_gpus("h200x8")):
        gpu = _Timed(NvmlSource())
        eng = _Timed(EngineSource(engine)) if engine is not None else None
        sources: list[Source] = [gpu] if eng is None else [gpu, eng]
        sampler = Sampler(sources, interval=1.0, intervals={"nvml": GPU_INTERVAL})
        sampler.start()
        time.sleep(seconds)
        sampler.stop()
    gpu.cycles = gpu.cycles[2:]  # the first cycles open NVML and warm up
    return gpu, eng


def _pick(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=0.001,
        help="sys.setswitchinterval, seconds (serve sets 0.001; CPython's default 0.005)",
    )
    parser.add_argument("--runs", default="no-engine,default-limits,limits-off")
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_interval)
    body = _page()
    server = _engine(body)
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    print(
        f"engine page: {len(body) / 1e6:.1f} MB, 330000 series; GPU interval {GPU_INTERVAL} s; "
        f"switch interval {args.switch_interval * 1e3:g} ms"
    )
    runs = {
        "no-engine": None,
        "default-limits": EngineConfig("big", url, kind="vllm"),
        "limits-off": EngineConfig(
            "big", url, kind="vllm", max_series=400_000, max_label_values=400_000, timeout_s=30
        ),
    }
    base: float | None = None
    print(
        f"{'run':<26}{'cycles':>7}{'delay p50 ms':>14}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'GPU cyc CPU ms':>16}{'engine cyc CPU ms':>19}"
    )
    wanted = args.runs.split(",")
    for name, engine in runs.items():
        if name not in wanted:
            continue
        gpu, eng = run(args.seconds, engine)
        cycles = gpu.cycles
        gpu_cpu = statistics.median(gpu.cpu) * 1e3
        eng_cpu = statistics.median(eng.cpu) * 1e3 if eng is not None and eng.cpu else 0.0
        if base is None:
            base = statistics.median(d for _, d in cycles)
        delays = sorted(late + max(0.0, d - base) for late, d in cycles)
        p50, p90, p99 = (_pick(delays, q) * 1e3 for q in (0.5, 0.9, 0.99))
        print(
            f"{name:<26}{len(delays):>7}{p50:>14.1f}{p90:>9.1f}{p99:>9.1f}{delays[-1] * 1e3:>9.1f}"
            f"{gpu_cpu:>16.1f}{eng_cpu:>19.1f}"
        )
    server.shutdown()


if __name__ == "__main__":
    main()
