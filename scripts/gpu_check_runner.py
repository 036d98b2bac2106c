"""gpu-check's command runner: every command logged (argv, exit code, seconds) under a time cap
and the run's deadline, in its own process session so that a cap kills its children too.
Stdlib only."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["CommandRecord", "Runner", "Skip", "StepRecord", "status_of", "stop"]


class Skip(Exception):  # noqa: N818 - a signal, not an error
    """A step that cannot run here; its message is the reason."""


@dataclass(slots=True)
class CommandRecord:
    """One command a step ran: argv, exit code (None: not started or killed), wall seconds."""

    name: str
    argv: list[str]
    rc: int | None = None
    seconds: float = 0.0
    timed_out: bool = False
    note: str = ""


@dataclass(slots=True)
class StepRecord:
    """One step: status ok | failed | timeout | skipped, why, wall seconds, its commands."""

    name: str
    status: str = "pending"
    reason: str = ""
    seconds: float = 0.0
    commands: list[CommandRecord] = field(default_factory=list)


def _say(text: str) -> None:
    print(f"[gpu-check] {text}", flush=True)


class Runner:
    """Runs the steps' commands: one environment, one deadline, logs under work/logs/."""

    def __init__(self, work: Path, env: dict[str, str], deadline: float, cwd: Path) -> None:
        self.work, self.env, self.deadline, self.cwd = work, env, deadline, cwd
        (work / "logs").mkdir(parents=True, exist_ok=True)
        self.step = StepRecord("none")

    def left(self) -> float:
        """Seconds until the run's deadline."""
        return self.deadline - time.monotonic()

    def log_path(self, name: str) -> Path:
        return self.work / "logs" / f"{self.step.name}.{name}.log"

    def note(self, name: str, argv: Sequence[str], note: str) -> CommandRecord:
        """Record a command that was not run, and why."""
        rec = CommandRecord(name, list(argv), note=note)
        self.step.commands.append(rec)
        _say(f"{self.step.name}/{name}: {note}")
        return rec

    def start(
        self, name: str, argv: Sequence[str], stdout: IO[str], stderr: IO[str]
    ) -> tuple[subprocess.Popen[bytes] | None, CommandRecord]:
        """Start argv in its own session; (None, record) when it cannot start."""
        rec = CommandRecord(name, list(argv))
        self.step.commands.append(rec)
        _say(f"{self.step.name}/{name}: {shlex.join(argv)}")
        stderr.write(f"$ {shlex.join(argv)}\n")
        stderr.flush()
        try:
            proc = subprocess.Popen(
                argv, stdout=stdout, stderr=stderr, env=self.env, cwd=self.cwd,
                start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            rec.note = f"cannot start: {exc}"
            return None, rec
        return proc, rec

    def run(
        self, name: str, argv: Sequence[str], cap: float, *, stdout: Path | None = None
    ) -> CommandRecord:
        """Run argv to the end, or kill it (and its children) at `cap` seconds or the deadline,
        whichever comes first. Its stdout goes to `stdout` or its log; stderr to its log."""
        limit = min(cap, self.left())
        if limit <= 1:
            return self.note(name, argv, "no time left")
        _say(f"{self.step.name}/{name}: cap {limit:.0f} s")
        log = self.log_path(name)
        start = time.monotonic()
        with log.open("w") as err, (stdout or log).open("w" if stdout else "a") as out:
            proc, rec = self.start(name, argv, out, err)
            if proc is None:
                return rec
            try:
                rec.rc = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                rec.timed_out = True
                stop(proc)
            rec.seconds = time.monotonic() - start
            err.write(f"\n# rc={rec.rc} seconds={rec.seconds:.1f} timed_out={rec.timed_out}\n")
        _say(f"  rc={rec.rc} {rec.seconds:.1f} s" + (" TIMED OUT" if rec.timed_out else ""))
        return rec


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM the process's session, SIGKILL it 5 s later if still there; its exit code."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def status_of(records: Sequence[CommandRecord]) -> tuple[str, str]:
    """A step's status and reason from its commands: timeout, then failed, else ok."""
    for rec in records:
        if rec.timed_out:
            return "timeout", f"{rec.name} hit its cap after {rec.seconds:.0f} s"
    for rec in records:
        if rec.rc != 0:
            why = rec.note or f"exit {rec.rc}; its log is under logs/"
            return "failed", f"{rec.name}: {why}"
    return "ok", ""
