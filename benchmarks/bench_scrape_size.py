"""Scrape size per node (issue 14): series and bytes of one `/metrics` scrape of
`gpumetrics serve --fake-gpus h200x8` (eight H200s on FakeNvml, the `h200` workload), plain
and gzipped (Python's gzip at level 6, what an HTTP front's gzip would send).

It starts the real `serve` as a subprocess on a free 127.0.0.1 port, waits until two scrapes
a second apart carry the same series (GPM and the derived gauges have filled in), and counts:
series (sample lines), series of the per-link NVLink families (a `link` label), bytes plain and
gzipped. `--serve-arg` passes flags on to `serve` (e.g. `--serve-arg=--nvlink-per-link`).
Sizes do not depend on timing; the scrape is deterministic up to the counters' values.

`--checkout DIR` measures the gpumetrics of another checkout (serve runs there with DIR first
on PYTHONPATH), e.g. main for a before/after pair.

Usage: .venv/bin/python benchmarks/bench_scrape_size.py [--gpus h200x8] [--json]
       [--serve-arg=--nvlink-per-link] [--checkout /work/main]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

#: How long serve may take to start and fill in every family.
DEADLINE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ScrapeSize:
    """One scrape: series (sample lines), per-link NVLink series, bytes plain and gzipped."""

    series: int
    nvlink_per_link_series: int
    families: int
    bytes_plain: int
    bytes_gzip6: int


def measure(text: bytes) -> ScrapeSize:
    """Count a Prometheus text exposition's series and bytes."""
    lines = text.decode().splitlines()
    samples = [line for line in lines if line and not line.startswith("#")]
    per_link = [
        line for line in samples if line.startswith("gpumetrics_gpu_nvlink") and 'link="' in line
    ]
    families = sum(1 for line in lines if line.startswith("# TYPE "))
    return ScrapeSize(
        series=len(samples),
        nvlink_per_link_series=len(per_link),
        families=families,
        bytes_plain=len(text),
        bytes_gzip6=len(gzip.compress(text, compresslevel=6)),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(url: str) -> bytes | None:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body: bytes = response.read()
            return body
    except OSError:
        return None


def scrape_serve(gpus: str, workload: str, extra: list[str], checkout: Path | None = None) -> bytes:
    """Start serve (from `checkout`'s code, default this interpreter's path), wait until its
    series set is stable, return one scrape's bytes."""
    port = _free_port()
    argv = [sys.executable, "-m", "gpumetrics", "serve", "--fake-gpus", gpus]
    argv += ["--fake-workload", workload, "--address", "127.0.0.1", "--port", str(port)]
    argv += ["--no-infiniband", *extra]
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(checkout), env.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=checkout, env=env
    )
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        previous: int | None = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise SystemExit(f"serve exited with {process.returncode}: {stderr.strip()}")
            body = _scrape(f"http://127.0.0.1:{port}/metrics")
            if body is not None and b"gpumetrics_gpu_sm_active_ratio{" in body:
                series = measure(body).series
                if series == previous:
                    return body
                previous = series
            time.sleep(1.0)
        raise SystemExit(f"serve did not settle within {DEADLINE_SECONDS:.0f} s")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", default="h200x8", help="--fake-gpus spec (default h200x8)")
    parser.add_argument("--workload", default="h200", help="--fake-workload (default h200)")
    parser.add_argument("--serve-arg", action="append", default=[], help="flag for serve")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--checkout", type=Path, help="measure this checkout's gpumetrics")
    args = parser.parse_args()
    size = measure(scrape_serve(args.gpus, args.workload, args.serve_arg, args.checkout))
    if args.json:
        record = {
            "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "gpus": args.gpus,
            "serve_args": args.serve_arg,
            "checkout": str(args.checkout or "."),
            **asdict(size),
        }
        print(json.dumps(record, indent=2))
        return
    flags = " ".join(args.serve_arg) or "(defaults)"
    print(f"serve --fake-gpus {args.gpus} --fake-workload {args.workload} {flags}")
    print(f"  series                  {size.series:>8,}")
    print(f"  per-link NVLink series  {size.nvlink_per_link_series:>8,}")
    print(f"  families                {size.families:>8,}")
    print(f"  bytes per scrape        {size.bytes_plain:>8,}")
    print(f"  bytes gzipped (level 6) {size.bytes_gzip6:>8,}")


if __name__ == "__main__":
    main()
