"""Run `gpumetrics serve` as a real subprocess on a free loopback port."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .servers import free_port, wait_for


@contextmanager
def gpumetrics_serve(tmp: Path, *args: str) -> Iterator[int]:
    """Start `gpumetrics serve ARGS` on 127.0.0.1; yields its port once /ready answers 200."""
    port = free_port()
    log = tmp / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gpumetrics",
                "serve",
                "--address",
                "127.0.0.1",
                "--port",
                str(port),
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"serve exited {process.returncode}: {log.read_text()}")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                return r.status == 200

        wait_for(ready, 30, "gpumetrics serve ready")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
