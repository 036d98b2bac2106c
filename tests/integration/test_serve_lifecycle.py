"""`gpumetrics serve` as a process: SIGTERM pushes a last OTLP export and exits 0; a config
file, env vars and flags combine with the documented precedence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from ..export.test_otel import OtlpReceiver
from .servers import free_port, wait_for


def test_sigterm_flushes_otlp_and_exits_cleanly(tmp_path: Path) -> None:
    receiver = OtlpReceiver()
    receiver.start()
    port = free_port()
    config = tmp_path / "gpumetrics.toml"
    # Port from the environment beats the file; the OTLP endpoint comes from the file.
    config.write_text(
        f'[serve]\nport = 1\naddress = "127.0.0.1"\n[sources]\nfake_gpus = "a100"\n'
        f'infiniband = false\n[otlp]\nendpoint = "{receiver.url}"\ninterval = 3600\n'
    )
    env = {**os.environ, "GPUMETRICS_SERVE_PORT": str(port)}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gpumetrics", "serve", "--config", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: (
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2).status == 200
            ),
            30,
            "serve ready",
        )
        assert receiver.received == []  # the 1 h export interval has not come round
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        receiver.stop()
    (last,) = receiver.wait_for(1)
    names = {
        m.name
        for rm in last.request.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert "hw.power" in names
    assert "gpumetrics.source.up" in names
    assert b"Traceback" not in (tmp_path / "serve.log").read_bytes()
