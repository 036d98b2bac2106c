"""Simulated GPU nodes for the fleet benchmark: K sidecars in one process.

Each sidecar is wired from the same parts, in the same way, as `gpumetrics serve
--fake-gpus SPEC --fake-ib PORTS --interval S` (gpumetrics/cli/serve.py): an NvmlSource over
FakeNvml, a FakeFabricSource, a Sampler sampling in the background, a PrometheusEndpoint and a
MetricsServer on its own loopback port. It adds what `serve`'s `--engine` flag adds once it
lands: one EngineSource per simulated engine (its hooks endpoint, kind "gpumetrics"), with the
engine's GPUs declared as INDEX:UUID so that `gpumetrics_engine_gpu_info` joins the GPU series
in the recording rules. With K=1 a process is exactly one node; with K>1 the nodes of a process
share its interpreter (and FakeNvml, which is process-global) but nothing else.

Prints one JSON line `{"ports": [...]}` on stdout once every sidecar is ready, then runs until
`--lifetime` seconds have passed or SIGTERM/SIGINT arrives (it always stops by itself).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pynvml

from gpumetrics.export.prometheus import PrometheusEndpoint
from gpumetrics.export.server import MetricsServer
from gpumetrics.pipeline import Sampler
from gpumetrics.sources import Source
from gpumetrics.sources.engine import EngineConfig, EngineSource
from gpumetrics.sources.nvml import NvmlSource
from gpumetrics.testing import FakeNvml, parse_fake_gpus
from gpumetrics.testing.fabric import FakeFabricSource
from gpumetrics.testing.workloads import WORKLOADS


def gpu_refs() -> list[str]:
    """INDEX:UUID of every (fake) GPU, as `nvidia-smi --query-gpu=index,uuid` lists them."""
    pynvml.nvmlInit()
    try:
        refs = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            uuid = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(index))
            refs.append(f"{index}:{uuid.decode() if isinstance(uuid, bytes) else uuid}")
        return refs
    finally:
        pynvml.nvmlShutdown()


def engine_configs(urls: list[str], gpus: list[str]) -> list[EngineConfig]:
    """One EngineConfig per engine of a node; the node's GPUs are split evenly among them."""
    share = max(1, len(gpus) // max(1, len(urls)))
    return [
        EngineConfig(
            name=f"engine-{i}",
            url=url,
            kind="gpumetrics",
            gpus=tuple(gpus[i * share : (i + 1) * share]),
        )
        for i, url in enumerate(urls)
    ]


class Sidecar:
    """One simulated node's exporter: sources → Sampler → PrometheusEndpoint → MetricsServer."""

    def __init__(self, engines: list[EngineConfig], *, fake_ib: int, interval: float) -> None:
        sources: list[Source] = [
            NvmlSource(gpm=True, processes=False),
            FakeFabricSource(fake_ib, epoch=time.time()),
            *(EngineSource(config) for config in engines),
        ]
        self.sampler = Sampler(sources, interval=interval)
        endpoint = PrometheusEndpoint(self.sampler.snapshot)
        self.server = MetricsServer("127.0.0.1", 0, endpoint.render, lambda: self.sampler.ready)

    def start(self) -> None:
        self.sampler.start()
        self.server.start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1, help="sidecars in this process (K)")
    parser.add_argument(
        "--engine-urls",
        type=Path,
        required=True,
        help="JSON file: a list of K lists of engine /metrics URLs, one list per node",
    )
    parser.add_argument("--fake-gpus", default="h200x8")
    parser.add_argument("--fake-ib", type=int, default=2)
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--lifetime", type=float, required=True, help="exit after S seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    per_node: list[list[str]] = json.loads(args.engine_urls.read_text())
    if len(per_node) != args.nodes:
        parser.error(f"{args.engine_urls} lists {len(per_node)} nodes, expected {args.nodes}")
    # Installed for the life of the process (pynvml holds it).
    FakeNvml(parse_fake_gpus(args.fake_gpus), workload=WORKLOADS["default"]).install()
    gpus = gpu_refs()
    sidecars = [
        Sidecar(engine_configs(urls, gpus), fake_ib=args.fake_ib, interval=args.interval)
        for urls in per_node
    ]
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    for sidecar in sidecars:
        sidecar.start()
    deadline = time.monotonic() + args.lifetime
    while not all(s.sampler.ready for s in sidecars):
        if stop.wait(0.1) or time.monotonic() > deadline:
            break
    print(json.dumps({"ports": [s.server.port for s in sidecars]}), flush=True)
    while not stop.is_set() and time.monotonic() < deadline:
        stop.wait(0.5)
    # Stopping K servers one by one waits out each one's poll interval: the benchmark is
    # done with them, and their threads and sockets go with the process.
    os._exit(0)


if __name__ == "__main__":
    main()
