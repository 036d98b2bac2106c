"""Simulated inference engines for the fleet benchmark: many `gpumetrics.hooks` engines in one
process, each driven with synthetic but plausible traffic.

Each engine is an `EngineMetrics` (one per (node, engine) pair). They share one loopback HTTP
server, engine i at `/engines/<i>/metrics`, whose body is `EngineMetrics.render_text()`: the
page `gpumetrics.hooks.serve` would serve for that engine alone. (One server per engine, as a
real fleet has, costs this one process a polling thread per engine: at 1,024 engines those
threads alone starved the machine, which measures the harness, not the sidecars.) One driver
thread records, once per `--tick` seconds for every engine: a prefill and a decode step with
explicit FLOPs and bytes, a prefix-cache lookup, KV occupancy, the queue, and a few finished
requests with their inter-token gaps. Every family the hooks export therefore has samples.

Prints one JSON line `{"urls": [...]}` on stdout once every endpoint listens, then runs until
`--lifetime` seconds have passed or SIGTERM/SIGINT arrives (it always stops by itself).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from gpumetrics.costmodel import find_model
from gpumetrics.hooks import CONTENT_TYPE, EngineMetrics

_PATH = re.compile(r"^/engines/([0-9]+)/metrics$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engines: ClassVar[list[EngineMetrics]] = []

    def do_GET(self) -> None:
        match = _PATH.match(self.path)
        if match is None or int(match.group(1)) >= len(self.engines):
            body, status, kind = b"not found\n", 404, "text/plain; charset=utf-8"
        else:
            body, status = self.engines[int(match.group(1))].render_text(), 200
            kind = CONTENT_TYPE
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def drive(engines: list[EngineMetrics], tick: float, stop: threading.Event) -> None:
    """Record one tick of synthetic traffic on every engine until `stop` is set."""
    rng = random.Random(7)
    while not stop.wait(tick):
        for metrics in engines:
            batch = rng.randint(16, 128)
            prompt = rng.randint(256, 4096)
            hit = rng.randint(0, prompt)
            metrics.record_step(
                phase="prefill",
                sequences=1,
                prefill_tokens=prompt,
                decode_tokens=0,
                duration_s=0.05,
                flops=2.8e11 * prompt,
                read_bytes=1.4e11,
                write_bytes=3.3e5 * prompt,
            )
            metrics.record_step(
                phase="decode",
                sequences=batch,
                prefill_tokens=0,
                decode_tokens=batch,
                duration_s=0.03,
                flops=2.8e11 * batch,
                read_bytes=1.4e11 + 3.3e5 * 2048 * batch,
                write_bytes=3.3e5 * batch,
            )
            metrics.record_prefix_lookup(queried_tokens=prompt, hit_tokens=hit)
            metrics.record_kv(used_blocks=rng.randint(1000, 60000), total_blocks=65536)
            metrics.set_queue(waiting=rng.randint(0, 20), running=batch)
            if rng.random() < 0.05:
                metrics.record_eviction(rng.randint(1, 64))
                metrics.record_recompute(rng.randint(16, 512), flops=1e13)
                metrics.record_preemption()
            for _ in range(2):
                metrics.record_request_finished(
                    ttft_s=rng.uniform(0.05, 1.5),
                    inter_token_s=[rng.uniform(0.02, 0.06) for _ in range(8)],
                    e2e_s=rng.uniform(2.0, 30.0),
                    prompt_tokens=prompt,
                    cached_tokens=hit,
                    output_tokens=rng.randint(32, 1024),
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, required=True, help="number of engines")
    parser.add_argument("--per-node", type=int, default=2, help="engines per node (names)")
    parser.add_argument("--model", default="llama-3-70b", help="cost-model preset (labels)")
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between updates")
    parser.add_argument("--lifetime", type=float, required=True, help="exit after S seconds")
    args = parser.parse_args()

    spec = find_model(args.model)
    engines = [
        EngineMetrics(
            f"engine-{i % args.per_node}",
            args.model,
            model_spec=spec,
            max_batch_sequences=256,
            max_batch_tokens=8192,
            kv_block_size=16,
            kv_capacity_blocks=65536,
        )
        for i in range(args.count)
    ]
    _Handler.engines = engines
    server = _Server(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/engines"
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    driver = threading.Thread(target=drive, args=(engines, args.tick, stop), daemon=True)
    driver.start()
    urls = [f"{base}/{i}/metrics" for i in range(len(engines))]
    print(json.dumps({"urls": urls}), flush=True)
    deadline = time.monotonic() + args.lifetime
    while not stop.is_set() and time.monotonic() < deadline:
        stop.wait(0.5)
    os._exit(0)  # daemon threads and the socket go with the process


if __name__ == "__main__":
    main()
