"""Hostile engines against `gpumetrics serve` (issue 13): does it survive, how fast do the GPU
series still scrape, how much memory does it take?

    .venv/bin/python benchmarks/chaos_serve.py [--seconds 10] [--faults a,b] [--json FILE]

Each fault gets a fresh `gpumetrics serve --fake-gpus h200x8 --interval 1` process (so its peak
RSS is its own) with the fault's engines, served from this process on 127.0.0.1:

- `baseline`: no engine;
- `page_330k`: one engine page of 330 k series with 330 k distinct label values (~15.6 MB,
  under the 16 MiB byte cap), served every cycle, with the default limits;
- `page_330k_unlimited`: the same page with the limits raised past it (max_series and
  max_label_values 400 k): what the exporter cost before the limits (issue 13 measured 965 MB);
- `churn_20k`: 20 k new label values every cycle (a new `model_name` each time);
- `slowloris`: an engine that trickles one byte every 50 ms;
- `hung_x4`: four engines that accept connections and never answer (timeout_s 10); the row
  also reports how long SIGTERM takes to stop the exporter (one 5 s deadline for all sources).

Meanwhile a client scrapes `/metrics` 10 times a second and times each scrape, and the GPU
sampler's own cycle time is read from `gpumetrics_source_collection_duration_seconds
{source="nvml"}` (the time of its last cycle, GIL waits included). Per fault it prints:
survived (process alive, every scrape answered 200 with the GPU series), scrape p50/p99, the
GPU cycle p99 and max seen, peak RSS (VmHWM) and the engine sources' error codes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_PAGE_SERIES = 330_000
_CHURN = 20_000


def _page_330k() -> bytes:
    """~15.6 MB: one gauge family, 330 k series, each a new model_name value."""
    lines = ["# TYPE vllm:num_requests_running gauge"]
    lines += [f'vllm:num_requests_running{{model_name="m{i:06d}"}} 1' for i in range(_PAGE_SERIES)]
    return ("\n".join(lines) + "\n").encode()


class _Churn:
    """A vLLM page whose 20 k label values are all new on every request."""

    def __init__(self) -> None:
        self._round = 0
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        with self._lock:
            self._round += 1
            r = self._round
        lines = ["# TYPE vllm:num_requests_running gauge"]
        lines += [f'vllm:num_requests_running{{model_name="r{r}-{i}"}} 1' for i in range(_CHURN)]
        return ("\n".join(lines) + "\n").encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Engine

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        try:
            if self.server.mode == "slowloris":
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                while not self.server.done.is_set():
                    self.wfile.write(b"#")
                    self.wfile.flush()
                    self.server.done.wait(0.05)
                return
            body = self.server.body()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the exporter gave up on us, as it should
            return


class _Engine(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: str, body: Callable[[], bytes] = bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode, self.body, self.done = mode, body, threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/metrics"

    def close(self) -> None:
        self.done.set()
        self.shutdown()
        self.server_close()


class _BlackHole:
    """Accepts TCP connections (in the kernel's backlog) and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/metrics"

    def close(self) -> None:
        self.sock.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_peak_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


def _pick(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


_NVML_CYCLE = re.compile(rb'gpumetrics_source_collection_duration_seconds\{source="nvml"\} (\S+)')
_ERRORS = re.compile(rb'gpumetrics_source_errors_total\{([^}]*source="engine:[^}]*)\}')
_CODE = re.compile(rb'code="([^"]+)"')


def run_fault(name: str, engines: list[str], seconds: float) -> dict[str, object]:
    port = _free_port()
    command = [
        sys.executable, "-m", "gpumetrics", "serve", "--fake-gpus", "h200x8",
        "--no-infiniband", "--interval", "1", "--address", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    for engine in engines:
        command += ["--engine", engine]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/metrics"
    latencies: list[float] = []
    cycles: list[float] = []
    codes: set[str] = set()
    reasons: set[str] = set()
    failures = 0
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until it serves the GPU series (the first NVML cycle is done)
            try:
                if b"gpumetrics_gpu_power_watts" in urllib.request.urlopen(url, timeout=2).read():
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: serve did not start")
            time.sleep(0.2)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    body = response.read()
                latencies.append(time.perf_counter() - started)
                if b"gpumetrics_gpu_power_watts" not in body:
                    failures += 1
                    reasons.add("no GPU series in the page")
                match = _NVML_CYCLE.search(body)
                if match:
                    cycles.append(float(match.group(1)))
                for labels in _ERRORS.findall(body):
                    codes.update(code.decode() for code in _CODE.findall(labels))
            except OSError as exc:
                failures += 1
                reasons.add(repr(exc)[:80])
            time.sleep(max(0.0, 0.1 - (time.perf_counter() - started)))
        alive = process.poll() is None
        peak = _rss_peak_mb(process.pid) if alive else float("nan")
        stop_started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            exit_code: int | None = process.wait(30)
        except subprocess.TimeoutExpired:
            exit_code = None
        stop_s = time.monotonic() - stop_started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read().decode() if process.stderr else ""
    return {
        "fault": name,
        "survived": alive and failures == 0 and exit_code == 0 and "Traceback" not in stderr,
        "scrapes": len(latencies),
        "failed_scrapes": failures,
        "scrape_p50_ms": round(_pick(latencies, 0.5) * 1e3, 1),
        "scrape_p99_ms": round(_pick(latencies, 0.99) * 1e3, 1),
        "gpu_cycle_p99_ms": round(_pick(cycles, 0.99) * 1e3, 1),
        "gpu_cycle_max_ms": round(max(cycles, default=float("nan")) * 1e3, 1),
        "peak_rss_mb": round(peak, 1),
        "sigterm_exit_s": round(stop_s, 2),
        "engine_error_codes": sorted(codes),
        "failures": sorted(reasons),
        "exit_code": exit_code,
        "traceback": "Traceback" in stderr,
    }


def faults() -> dict[str, Callable[[], tuple[list[str], list[object]]]]:
    """Fault name -> a function starting its engines: (--engine values, things to close)."""

    def page(limits: str) -> Callable[[], tuple[list[str], list[object]]]:
        def start() -> tuple[list[str], list[object]]:
            body = _page_330k()
            engine = _Engine("page", lambda: body)
            return [f"big={engine.url},kind=vllm{limits}"], [engine]

        return start

    def churn() -> tuple[list[str], list[object]]:
        engine = _Engine("churn", _Churn())
        return [f"churn={engine.url},kind=vllm"], [engine]

    def slowloris() -> tuple[list[str], list[object]]:
        engine = _Engine("slowloris")
        return [f"slow={engine.url},kind=vllm"], [engine]

    def hung() -> tuple[list[str], list[object]]:
        holes = [_BlackHole() for _ in range(4)]
        return [f"hung{i}={h.url},kind=vllm,timeout_s=10" for i, h in enumerate(holes)], list(holes)

    return {
        "baseline": lambda: ([], []),
        "page_330k": page(""),
        "page_330k_unlimited": page(",max_series=400000,max_label_values=400000"),
        "churn_20k": churn,
        "slowloris": slowloris,
        "hung_x4": hung,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="scraping time per fault")
    parser.add_argument("--faults", default=",".join(faults()), help="comma-separated")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    table = faults()
    rows = []
    header = (
        f"{'fault':<22}{'survived':>9}{'p50 ms':>8}{'p99 ms':>8}{'gpu cyc p99':>12}"
        f"{'gpu cyc max':>12}{'peak RSS MB':>12}{'SIGTERM s':>10}  codes"
    )
    print(header)
    for name in args.faults.split(","):
        engines, closers = table[name]()
        try:
            row = run_fault(name, engines, args.seconds)
        finally:
            for closer in closers:
                closer.close()  # type: ignore[attr-defined]
        rows.append(row)
        print(
            f"{name:<22}{row['survived']!s:>9}{row['scrape_p50_ms']:>8}{row['scrape_p99_ms']:>8}"
            f"{row['gpu_cycle_p99_ms']:>12}{row['gpu_cycle_max_ms']:>12}{row['peak_rss_mb']:>12}"
            f"{row['sigterm_exit_s']:>10}  {','.join(row['engine_error_codes'])}"  # type: ignore[arg-type]
            f"  {'; '.join(row['failures'])}",  # type: ignore[arg-type]
            flush=True,
        )
    machine = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
