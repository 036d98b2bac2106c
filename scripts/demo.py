"""The no-GPU demo behind `make demo`: the whole loop, engine to exporter to a terminal view.

1. The reference worker (a tiny Llama on this CPU) serves a multi-turn chat load from a KV
   pool far too small for it (16 blocks, 8 new conversations a second): prefixes are
   evicted, sequences preempted, prompts recomputed. Its hooks serve /metrics.
2. `gpumetrics serve` on eight simulated H200s (FakeNvml, a steady memory-bound decode
   load) and two InfiniBand ports scrapes that engine beside them, as a node sidecar does,
   and derives MFU, MBU, hit ratio, bound, load over a 30 s window.
3. `gpumetrics top --once` reads serve's /metrics and prints one frame: naive utilization
   beside what the GPUs and the engine really do.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

from rich.console import Console

from gpumetrics.view import Endpoint, NodeView, build_view, read_points

GPUMETRICS = [sys.executable, "-m", "gpumetrics"]
#: Seconds of history the frame is taken after (the derived window is 30 s); a test shortens it.
SETTLE_S = float(os.environ.get("GPUMETRICS_DEMO_SETTLE_S", "25"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"demo: timed out waiting for {what}")


def _ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def main() -> None:
    console = Console(highlight=False)
    engine_port, serve_port = _free_port(), _free_port()
    metrics = f"http://127.0.0.1:{serve_port}/metrics"
    worker = [
        *GPUMETRICS, "worker", "--device", "cpu", "--model", "tiny",
        "--kv-blocks", "16", "--arrival-rate", "8", "--think-time", "0.5",
        "--duration", "120", "--serve", f"127.0.0.1:{engine_port}",
    ]  # fmt: skip
    serve = [
        *GPUMETRICS, "serve", "--address", "127.0.0.1", "--port", str(serve_port),
        "--fake-gpus", "h200x8", "--fake-workload", "steady", "--fake-ib", "2",
        "--engine", f"worker=http://127.0.0.1:{engine_port}/metrics,kind=gpumetrics,gpus=0",
        "--interval", "0.5", "--derived-window", "30s", "--log-level", "error",
    ]  # fmt: skip
    console.rule("[bold]2. An engine under KV pressure, served beside eight simulated H200s")
    console.print("$ " + " ".join(worker[2:]) + " &")
    console.print("$ " + " ".join(serve[2:]) + " &")
    processes = [subprocess.Popen(worker, stderr=subprocess.DEVNULL)]
    try:
        processes.append(subprocess.Popen(serve))
        _wait(lambda: _ok(f"http://127.0.0.1:{engine_port}/metrics"), "the worker's /metrics")
        _wait(lambda: _ok(f"http://127.0.0.1:{serve_port}/ready"), "serve to be ready")
        console.print(f"Both running; letting {SETTLE_S:.0f} s of history build up ...")
        time.sleep(SETTLE_S)
        console.rule("[bold]3. One frame of `gpumetrics top`")
        console.print(f"$ gpumetrics top --once --url {metrics}")
        view = build_view(read_points(Endpoint(metrics)), source=metrics)  # for the words below
        subprocess.run([*GPUMETRICS, "top", "--once", "--url", metrics], check=True)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(20)
    _explain(console, view)


def _explain(console: Console, view: NodeView) -> None:
    gpu = view.gpus[0]
    lines = [
        f"[bold]Naive utilization reads {gpu.naive_util:.0%}[/] on every GPU (nvidia-smi's "
        f"'a kernel was running'), yet the tensor cores are busy {gpu.tensor_active:.0%} of "
        f"the time while HBM runs at {gpu.dram_active:.0%} of its bandwidth: memory-bound "
        "decode, which no amount of batching shows in 'utilization'.",
    ]
    if view.engines:
        engine = view.engines[0]
        lines.append(
            f"The engine's 16-block KV pool is {engine.kv_usage or 0:.0%} full on average; "
            f"only {engine.hit_ratio or 0:.0%} of prompt tokens hit the prefix cache, "
            f"{engine.recompute_share or 0:.0%} of its FLOPs recompute evicted or preempted "
            "KV, and running sequences keep being preempted (the preempt column): the pool "
            "is too small for the conversations it serves."
        )
        lines.append(
            "It is a tiny model on this CPU, attributed to GPU 0 for the demo, so its MFU "
            "and MBU against an H200's peaks are near 0; on a GPU those columns are the "
            "engine's useful work, and 'bound' says which roof limits it."
        )
    lines.append(
        "No Prometheus was involved: serve derives these gauges from its own counter history "
        "(METRICS.md, 'Derived over a window'); the recording rules in alerts/ compute the "
        "same numbers fleet-wide."
    )
    for line in lines:
        console.print(line)


if __name__ == "__main__":
    main()
