"""Exporter cost, side by side with nvitop-exporter on the same FakeNvml, in one run.

    .venv/bin/python benchmarks/bench_exporter.py [--json FILE] [--quick]

Measures (issue 3):
1. server-side scrape latency (render of the cached snapshot) for 8 and 64 fake GPUs, also
   while every NVML call takes 50 ms and the sampler runs in the background;
2. CPU time per sampling cycle for 8 GPUs (thread CPU time), and the CPU share that implies at
   1 s sampling: gpumetrics' NvmlSource.collect vs nvitop-exporter's update_device loop
   (its update_host, psutil host metrics, is reported apart: it is not GPU work);
3. resident memory of `gpumetrics serve --fake-gpus h200x8` and of nvitop-exporter's
   PrometheusExporter running on the same fake, each in its own process.

nvitop-exporter runs unmodified against FakeNvml through pynvml; NVML functions the fake does
not implement (encoder/decoder utilization, fan speed, the deprecated NVLink utilization
counters) fail fast with NVML_ERROR_FUNCTION_NOT_FOUND, which nvitop maps to N/A, so its
measured cost is if anything lower than on a real driver.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pynvml
from nvitop import Device
from nvitop_exporter.exporter import PrometheusExporter
from prometheus_client import CollectorRegistry

from gpumetrics.export.prometheus import PrometheusEndpoint
from gpumetrics.pipeline import Sampler
from gpumetrics.sources.nvml import NvmlSource
from gpumetrics.testing import FakeNvml, parse_fake_gpus

ROOT = Path(__file__).resolve().parent.parent


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "n": len(ordered)}


def scrape_latency(gpus: int, repeats: int, slow_nvml: float = 0.0) -> dict[str, float]:
    """Wall time of rendering /metrics from the cached snapshot (seconds)."""
    with FakeNvml(parse_fake_gpus(f"h200x{gpus}")) as fake:
        source = NvmlSource()
        sampler = Sampler([source], interval=1.0)
        sampler.sample_once()
        endpoint = PrometheusEndpoint(sampler.snapshot)
        if slow_nvml:
            fake.slow_calls(slow_nvml)
            sampler.start()  # cycles now take (calls x 50 ms) in the background
        times = []
        size = 0
        for _ in range(repeats):
            start = time.perf_counter()
            body, _ = endpoint.render(None)
            times.append(time.perf_counter() - start)
            size = len(body)
        if slow_nvml:
            fake.slow_calls(0.0)
            sampler.stop()
        else:
            source.close()
    return {**_percentiles(times), "bytes": size}


class _FakeTime:
    """Thread CPU time spent inside the fake NVML library (the fake's own Python cost, which a
    real driver's C calls do not have), so each exporter's own cost can be separated."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap_cached_functions(self) -> None:
        cache = pynvml._nvmlGetFunctionPointer_cache
        for name, function in list(cache.items()):
            if getattr(function, "_timed", False):
                continue

            def timed(*args: object, _f: Callable[..., object] = function) -> object:
                start = time.thread_time()
                try:
                    return _f(*args)
                finally:
                    self.seconds += time.thread_time() - start

            timed._timed = True  # type: ignore[attr-defined]
            cache[name] = timed


def _cpu_per_call(
    function: Callable[[], object], repeats: int, fake: _FakeTime
) -> tuple[float, float]:
    """Median thread CPU seconds per call: (total, outside the fake library)."""
    function()  # warm up: pynvml caches every function pointer it uses; a second call
    function()  # reaches GPM's metrics call too (the first one only takes a baseline)
    fake.wrap_cached_functions()
    totals, own = [], []
    for _ in range(repeats):
        fake.seconds = 0.0
        start = time.thread_time()
        function()
        total = time.thread_time() - start
        totals.append(total)
        own.append(total - fake.seconds)
    return statistics.median(totals), statistics.median(own)


def sampling_cpu(gpus: int, repeats: int) -> dict[str, float]:
    """CPU seconds per sampling cycle: ours vs nvitop-exporter, same fake GPUs."""
    fake_time = _FakeTime()
    with FakeNvml(parse_fake_gpus(f"h200x{gpus}")):
        ours = NvmlSource()
        ours_total, ours_own = _cpu_per_call(lambda: ours.collect(time.time()), repeats, fake_time)
        ours.close()
        exporter = PrometheusExporter(Device.all(), hostname="bench", registry=CollectorRegistry())

        def nvitop_devices() -> None:
            for device in exporter.devices:
                exporter.update_device(device)

        nvitop_total, nvitop_own = _cpu_per_call(nvitop_devices, repeats, fake_time)
        host_total, _ = _cpu_per_call(exporter.update_host, max(3, repeats // 5), fake_time)
    return {
        "gpumetrics_total": ours_total,
        "gpumetrics_own": ours_own,
        "nvitop_exporter_total": nvitop_total,
        "nvitop_exporter_own": nvitop_own,
        "nvitop_exporter_host": host_total,
        "ratio_own": ours_own / nvitop_own,
        "ratio_total": ours_total / nvitop_total,
    }


_RSS_SCRIPT = {
    "gpumetrics": """
        import sys
        from gpumetrics.cli import cli
        sys.argv = ["gpumetrics", "serve", "--fake-gpus", "h200x8", "--address", "127.0.0.1",
                    "--port", "0", "--no-infiniband", "--log-level", "error"]
        cli()
    """,
    "nvitop-exporter": """
        from prometheus_client import start_http_server
        from gpumetrics.testing import FakeNvml, parse_fake_gpus
        FakeNvml(parse_fake_gpus("h200x8")).install()
        from nvitop import Device
        from nvitop_exporter.exporter import PrometheusExporter
        exporter = PrometheusExporter(Device.all(), hostname="bench")
        start_http_server(0, "127.0.0.1")
        exporter.collect()
    """,
}


def resident_memory(settle: float) -> dict[str, float]:
    """VmRSS (bytes) of each exporter process after `settle` seconds of sampling at 1 s."""
    result = {}
    for name, script in _RSS_SCRIPT.items():
        process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(settle)
            status = Path(f"/proc/{process.pid}/status").read_text()
            kib = next(
                int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
            )
            result[name] = kib * 1024.0
        finally:
            process.terminate()
            process.wait(10)
    return result


def main() -> None:
    logging.getLogger("nvitop").setLevel(logging.CRITICAL)  # it logs every N/A it meets
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke run)")
    args = parser.parse_args()
    repeats = 20 if args.quick else 200
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "scrape_8": scrape_latency(8, repeats),
        "scrape_64": scrape_latency(64, max(20, repeats // 4)),
        "scrape_8_slow_nvml_50ms": scrape_latency(8, repeats, slow_nvml=0.05),
        "sampling_cpu_8": sampling_cpu(8, max(10, repeats // 10)),
        "rss": resident_memory(3.0 if args.quick else 6.0),
    }
    ms = lambda s: f"{s * 1e3:.2f} ms"  # noqa: E731
    print(f"machine: {results['machine']}; date {results['date']}")
    for key in ("scrape_8", "scrape_64", "scrape_8_slow_nvml_50ms"):
        r = results[key]
        print(
            f"{key:26s} p50 {ms(r['p50'])}  p95 {ms(r['p95'])}  p99 {ms(r['p99'])}  "
            f"({r['bytes'] / 1024:.0f} KiB)"
        )
    cpu = results["sampling_cpu_8"]
    print(
        f"sampling CPU per cycle, 8 GPUs (own = outside the fake library): gpumetrics "
        f"{ms(cpu['gpumetrics_total'])} (own {ms(cpu['gpumetrics_own'])}); nvitop-exporter "
        f"devices {ms(cpu['nvitop_exporter_total'])} (own {ms(cpu['nvitop_exporter_own'])}), "
        f"+ host {ms(cpu['nvitop_exporter_host'])}; own ratio {cpu['ratio_own']:.2f}, "
        f"total ratio {cpu['ratio_total']:.2f}; CPU share at 1 s sampling: "
        f"{cpu['gpumetrics_total'] * 100:.2f}% vs {cpu['nvitop_exporter_total'] * 100:.2f}%"
    )
    rss = results["rss"]
    print("resident memory: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in rss.items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
