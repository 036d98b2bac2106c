"""gpu-check's trace step: `gpumetrics serve` scraped every 0.5 s while a workload goes through
its phases, saved as a FakeNvml replay fixture (tests/data/h200/README.md):

  trace.tgz          trace/sNNNN_<epoch>.prom (one GET /metrics each), trace/phases.txt,
                     trace/serve.log
  trace-phases.txt   `<epoch> <phase> [key=value ...]` lines written by the workload
  trace-numbers.json what the workload achieved (TFLOP/s, TB/s, kernels)

Stdlib only. The raw scrapes also stay in work/trace/ for the summary.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from gpu_check_runner import Runner, stop

__all__ = ["SCRAPE_EVERY_S", "Scraper", "record"]

#: Seconds between scrapes (the sidecar itself samples every 0.25 s).
SCRAPE_EVERY_S = 0.5
#: Seconds `serve` gets to answer its first scrape.
SERVE_READY_S = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Scraper(threading.Thread):
    """GETs `url` every `every` s on a fixed schedule into `folder/sNNNN_<epoch>.prom`,
    numbering the saved scrapes from 0; failures are counted, not saved."""

    def __init__(self, url: str, folder: Path, every: float = SCRAPE_EVERY_S) -> None:
        super().__init__(name="gpu-check-scraper", daemon=True)
        self.url, self.folder, self.every = url, folder, every
        self.saved = self.failed = 0
        self.last_error = ""
        self._halt = threading.Event()

    def run(self) -> None:
        due = time.monotonic()
        while not self._halt.is_set():
            at = time.time()
            try:
                with urllib.request.urlopen(self.url, timeout=2.0) as response:
                    body = response.read()
            except (OSError, ValueError) as exc:
                self.failed += 1
                self.last_error = repr(exc)
            else:
                (self.folder / f"s{self.saved:04d}_{at:.2f}.prom").write_bytes(body)
                self.saved += 1
            due += self.every
            self._halt.wait(max(0.0, due - time.monotonic()))

    def halt(self) -> None:
        self._halt.set()
        self.join(timeout=5.0)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float) -> str:
    """'' once `url` answers; else why not (serve exited, or no answer in `seconds`)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if proc.poll() is not None:
            return f"serve exited with {proc.returncode} before answering"
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                response.read()
            return ""
        except (OSError, ValueError):
            time.sleep(0.25)
    return f"serve did not answer {url} within {seconds:.0f} s"


def record(r: Runner, *, serve: Sequence[str], workload: Sequence[str], cap: float) -> None:
    """Run serve in the background, the workload in the foreground (it writes the phases),
    scraping throughout; then pack trace.tgz. Everything is logged on the Runner's step."""
    deadline = time.monotonic() + min(cap, r.left())
    folder = r.work / "trace"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    phases = r.work / "trace-phases.txt"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    argv = [*serve, "--address", "127.0.0.1", "--port", str(port)]
    log = r.log_path("serve")
    started = time.monotonic()
    with log.open("w") as out:
        proc, srec = r.start("serve", argv, out, out)
        if proc is None:
            return
        scraper = Scraper(url, folder)
        try:
            srec.note = _wait_ready(url, proc, min(SERVE_READY_S, deadline - time.monotonic()))
            if srec.note:
                r.note("workload", workload, "not run: serve is not answering")
                return
            scraper.start()
            r.run(
                "workload",
                [*workload, "--phases", str(phases), "--json", str(r.work / "trace-numbers.json")],
                max(1.0, deadline - time.monotonic()),
            )
            time.sleep(SCRAPE_EVERY_S)  # one scrape after the `end` mark
        finally:
            if scraper.is_alive():
                scraper.halt()
            running = proc.poll() is None
            code = stop(proc)
            # Stopped by us while still serving: that is serve's success.
            srec.rc = 0 if running and not srec.note else (code or -1)
            srec.seconds = time.monotonic() - started
    scrapes = f"{scraper.saved} scrapes, {scraper.failed} failed"
    if scraper.last_error:
        scrapes += f" (last: {scraper.last_error})"
    srec.note = "; ".join(n for n in (srec.note, scrapes) if n)
    shutil.copyfile(log, folder / "serve.log")
    if phases.exists():
        shutil.copyfile(phases, folder / "phases.txt")
    with tarfile.open(r.work / "trace.tgz", "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=f"trace/{path.name}")
    if scraper.saved == 0 and srec.rc == 0:
        srec.rc, srec.note = -1, f"no scrape saved; {srec.note}"
