"""scripts/gpu_check_runner.py: commands logged with exit code and seconds, killed with their
children at the cap, never started past the deadline; a step's status from its commands."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from gpu_check_runner import CommandRecord, Runner, StepRecord, status_of


def _runner(tmp_path: Path, deadline_in: float = 60.0) -> Runner:
    runner = Runner(tmp_path, dict(os.environ), time.monotonic() + deadline_in, tmp_path)
    runner.step = StepRecord("demo")
    return runner


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (a reparented child nobody reaped yet)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_a_command_is_logged_with_its_exit_code_and_stdout(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    out = tmp_path / "answer.txt"
    code = "import sys; print('forty-two'); print('to stderr', file=sys.stderr); sys.exit(3)"
    rec = runner.run("answer", [sys.executable, "-c", code], 60, stdout=out)
    assert (rec.rc, rec.timed_out) == (3, False)
    assert rec.seconds > 0
    assert out.read_text() == "forty-two\n"
    log = (tmp_path / "logs" / "demo.answer.log").read_text()
    assert log.startswith(f"$ {sys.executable} -c ")
    assert "to stderr" in log
    assert "# rc=3 " in log
    assert runner.step.commands == [rec]
    assert status_of(runner.step.commands) == ("failed", "answer: exit 3; its log is under logs/")


def test_the_cap_kills_the_command_and_its_children(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    pidfile = tmp_path / "child.pid"
    script = f"sleep 120 & echo $! > {pidfile}; wait"
    rec = runner.run("sleepy", ["bash", "-c", script], 1.5)
    assert rec.timed_out
    assert rec.rc is None
    assert _gone(int(pidfile.read_text()))
    assert status_of([rec])[0] == "timeout"


def test_nothing_starts_past_the_deadline(tmp_path: Path) -> None:
    runner = _runner(tmp_path, deadline_in=-1.0)
    rec = runner.run("late", ["true"], 60)
    assert (rec.rc, rec.note) == (None, "no time left")
    assert not (tmp_path / "logs" / "demo.late.log").exists()
    assert status_of([rec]) == ("failed", "late: no time left")


def test_a_missing_program_is_recorded_not_raised(tmp_path: Path) -> None:
    rec = _runner(tmp_path).run("ghost", ["/nonexistent/program"], 10)
    assert rec.rc is None
    assert rec.note.startswith("cannot start: ")


def test_status_prefers_timeout_then_failure() -> None:
    ok = CommandRecord("a", ["a"], rc=0)
    failed = CommandRecord("b", ["b"], rc=1)
    slow = CommandRecord("c", ["c"], timed_out=True, seconds=12.0)
    assert status_of([ok]) == ("ok", "")
    assert status_of([]) == ("ok", "")
    assert status_of([ok, failed, slow]) == ("timeout", "c hit its cap after 12 s")
    assert status_of([ok, failed])[0] == "failed"
