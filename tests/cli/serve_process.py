"""`gpumetrics serve` as a real subprocess, for the signal and lifecycle tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..integration.servers import free_port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass(frozen=True)
class Serving:
    """A running `serve`: its process, base URL, log file and TMPDIR."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    tmp: Path


@contextmanager
def serving(
    tmp: Path, *args: str, address: str = "127.0.0.1", wait: str = "/ready"
) -> Iterator[Serving]:
    """Start `gpumetrics serve ARGS` on `address` with its own TMPDIR under `tmp`; yields
    once `wait` answers 200. Killed on the way out if still running."""
    port = free_port()
    host = f"[{address}]" if ":" in address else address
    url = f"http://{host}:{port}"
    temp = tmp / "tmpdir"
    temp.mkdir(exist_ok=True)
    log = tmp / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gpumetrics", "serve", "--address", address,
             "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TMPDIR": str(temp)},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _answers(url + wait):
            if process.poll() is not None:
                raise AssertionError(f"serve exited {process.returncode}: {log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not answer {wait} in 60 s: {log.read_text()}")
            time.sleep(0.2)
        yield Serving(process, url, log, temp)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
