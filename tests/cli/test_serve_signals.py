"""`gpumetrics serve` as a real process under signals: SIGTERM, SIGINT and SIGQUIT stop it
cleanly (exit 0, the fake-IB temp dir removed); SIGHUP is logged and ignored; four hung
engines do not stretch shutdown past the one shared deadline."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .serve_process import Serving, serving

DEMO = ("--fake-gpus", "a100", "--fake-ib", "1", "--interval", "0.2")


def _fake_ib_dirs(served: Serving) -> list[Path]:
    return sorted(served.tmp.glob("fake-ib-*"))


def _stopped_cleanly(served: Serving, signum: signal.Signals) -> None:
    assert _fake_ib_dirs(served), "the fake fabric's temp dir should exist while serving"
    served.process.send_signal(signum)
    assert served.process.wait(20) == 0
    log = served.log.read_text()
    assert f"{signum.name} received: stopping" in log
    assert "Traceback" not in log
    assert _fake_ib_dirs(served) == []


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT], ids=lambda s: s.name
)
def test_stop_signals_exit_0_and_remove_temp_dirs(tmp_path: Path, signum: signal.Signals) -> None:
    with serving(tmp_path, *DEMO) as served:
        _stopped_cleanly(served, signum)


def test_sighup_is_logged_and_ignored(tmp_path: Path) -> None:
    with serving(tmp_path, *DEMO) as served:
        served.process.send_signal(signal.SIGHUP)
        for _ in range(50):  # the log line says the signal arrived and was handled
            if "SIGHUP received and ignored" in served.log.read_text():
                break
            time.sleep(0.1)
        assert "SIGHUP received and ignored" in served.log.read_text()
        assert served.process.poll() is None  # still running
        with urllib.request.urlopen(f"{served.url}/metrics", timeout=5) as response:
            assert response.status == 200
            assert b"gpumetrics_gpu_power_watts" in response.read()
        _stopped_cleanly(served, signal.SIGTERM)


def test_sigterm_with_four_hung_engines_meets_one_deadline(tmp_path: Path) -> None:
    """Four engines that accept the connection and never answer, with timeout_s 60: each
    source is stuck in its fetch. Shutdown used to wait 5 s per hung source (20 s for four);
    now the sources share one 5 s deadline. The engines' /metrics series are there (0)
    from the start, before their first fetch ends."""
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(16)  # never accepted: connections sit in the backlog, unanswered
        port = black_hole.getsockname()[1]
        engines = [
            arg
            for i in range(4)
            for arg in ("--engine", f"hung{i}=http://127.0.0.1:{port}/metrics,timeout_s=60")
        ]
        with serving(tmp_path, *DEMO, *engines, wait="/metrics") as served:
            with urllib.request.urlopen(f"{served.url}/metrics", timeout=5) as response:
                page = response.read().decode()
            for i in range(4):
                assert f'gpumetrics_source_up{{source="engine:hung{i}"}} 0.0' in page
            with pytest.raises(urllib.error.HTTPError) as info:  # not every source has cycled
                urllib.request.urlopen(f"{served.url}/ready", timeout=5)
            assert info.value.code == 503
            served.process.send_signal(signal.SIGTERM)
            # 5 s for the sources, plus the HTTP server's stop and interpreter exit; the
            # old serial joins needed 20 s.
            assert served.process.wait(12) == 0
            assert "Traceback" not in served.log.read_text()
            assert _fake_ib_dirs(served) == []


def test_a_start_up_failure_after_the_fakes_exist_removes_their_temp_dir(tmp_path: Path) -> None:
    """The fake fabric is built before the port is bound; a bind failure still removes it."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "gpumetrics", "serve", *DEMO, "--address", "192.0.2.1",
         "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "cannot listen on 192.0.2.1" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.glob("fake-ib-*")) == []
