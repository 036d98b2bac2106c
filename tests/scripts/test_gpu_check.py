"""scripts/gpu-check: the dry run end to end (every step on the CPU: tiny model, fake GPUs), and
the budget. What comes back from a GPU machine is one archive and one summary, so the test
reads only those: every step's output, the trace as a replay fixture, the summary."""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import gpu_check
import pytest
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
PHASES = ["idle", "gemm", "gemm_end", "copy", "copy_end", "tiny_kernels", "tiny_end", "end"]
PHASE_LINE = re.compile(r"^(\d+\.\d+) ([a-z_]+)((?: [A-Za-z_]+=\S+)*)$")
SCRAPE = re.compile(r"^trace/s(\d{4,})_(\d+\.\d+)\.prom$")
STEPS = ["wheels", "env", "trace", "profile-short", "fast-decode", "profile-long", "worker"]
STEPS.append("hf-generate")


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def _check_phases(text: str) -> list[tuple[float, str, dict[str, str]]]:
    marks = []
    for line in text.splitlines():
        match = PHASE_LINE.match(line)
        assert match, f"phases line {line!r} is not '<epoch> <phase> [k=v ...]'"
        extra = dict(kv.split("=", 1) for kv in match.group(3).split())
        marks.append((float(match.group(1)), match.group(2), extra))
    assert [m[1] for m in marks] == PHASES
    assert [m[0] for m in marks] == sorted(m[0] for m in marks)
    numbers = {k: v for _, _, extra in marks for k, v in extra.items()}
    assert float(numbers["tflops"]) > 0
    assert float(numbers["TBps_rw"]) > 0
    assert int(numbers["kernels"]) > 0
    return marks


def _check_trace(tgz: bytes, phases_text: str) -> None:
    marks = _check_phases(phases_text)
    scrapes = {}
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
        assert "trace/phases.txt" in names
        assert "trace/serve.log" in names
        for member in tar.getmembers():
            match = SCRAPE.match(member.name)
            if match:
                body = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
                scrapes[int(match.group(1))] = (float(match.group(2)), body)
        phases_member = tar.extractfile("trace/phases.txt").read().decode()  # type: ignore[union-attr]
    assert phases_member == phases_text
    assert sorted(scrapes) == list(range(len(scrapes))), "scrape numbers run 0, 1, 2, ..."
    times = [scrapes[i][0] for i in sorted(scrapes)]
    assert times == sorted(times)
    # Scraped throughout: before the first mark, and inside every busy phase.
    assert times[0] < marks[0][0]
    for (start, name, _), (end, _, _) in itertools.pairwise(marks):
        if name in ("gemm", "copy", "tiny_kernels"):
            assert any(start <= t < end for t in times), f"no scrape during {name}"
    for at, body in scrapes.values():
        families = {f.name: f for f in text_string_to_metric_families(body)}
        up = families["gpumetrics_gpu_up"].samples
        assert [s.labels["gpu"] for s in up] == ["0"]  # --fake-gpus h200x1
        if at >= marks[1][0]:  # GPM needs two samples: present once the workload runs
            assert "gpumetrics_gpu_tensor_active_ratio" in families
        assert families["gpumetrics_gpu_process_memory_bytes"].samples  # --process-memory
        sources = {s.labels["source"] for s in families["gpumetrics_source_up"].samples}
        assert "pods" in sources  # --pod-attribution cgroup


@pytest.mark.slow
def test_dry_run_archive_holds_every_step(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the worker steps need torch")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("OUT", None)
    run = subprocess.run(
        [str(REPO / "scripts" / "gpu-check"), "--dry-run", "--out", str(out),
         "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["gpu-check.tgz", "summary.txt"]
    members = _members(out / "gpu-check.tgz")
    steps = json.loads(members["gpu-check/steps.json"])
    assert [s["name"] for s in steps] == STEPS
    status = {s["name"]: s for s in steps}
    has_transformers = json.loads(members["gpu-check/env/versions.json"])["transformers"]
    for step in steps:
        expected = "skipped" if step["name"] == "wheels" else "ok"
        if (
            step["name"] == "fast-decode"
            and not (REPO / "scripts/gpu_fast_decode_check.py").exists()
        ):
            expected = "skipped"
        if step["name"] == "hf-generate" and not has_transformers:
            expected = "skipped"
        assert step["status"] == expected, (step, run.stdout[-3000:])
        for command in step["commands"]:
            assert command["rc"] == 0, command
            assert command["seconds"] > 0
    assert run.returncode == 0, run.stdout[-3000:]
    assert status["fast-decode"]["reason"] or "gpu-check/fast_decode.json" in members

    doctor = json.loads(members["gpu-check/env/doctor.json"])
    assert doctor["checks"]
    for name in ("profile-short", "profile-long"):
        report = json.loads(members[f"gpu-check/{name}.json"])
        assert report["schema"] == "gpumetrics.profile/v1"
        assert report["calibration"] is not None
        assert {c["batch"] for c in report["cells"]} == {1, 4}
        assert all(c["status"] == "ok" and c["mbu"] > 0 for c in report["cells"])
    worker = json.loads(members["gpu-check/worker.json"])
    assert worker["requests"] == 12
    assert worker["tokens_per_second"] > 0
    if has_transformers:
        hf = json.loads(members["gpu-check/hf-generate.json"])
        assert {k for k in hf if k.startswith("eager_b")} == {"eager_b1", "eager_b4"}
    for log in ("env.doctor", "trace.serve", "trace.workload", "worker.worker"):
        text = members[f"gpu-check/logs/{log}.log"].decode()
        assert text.startswith("$ ")

    _check_trace(members["gpu-check/trace.tgz"], members["gpu-check/trace-phases.txt"].decode())

    summary = (out / "summary.txt").read_text()
    assert summary.encode() == members["gpu-check/summary.txt"]
    assert "dry run" in summary
    for step in STEPS:
        assert re.search(rf"^  {re.escape(step)} +(ok|skipped) ", summary, re.M), step
    table = [line for line in summary.splitlines() if re.match(r"^\| \d+ \| \d+ \|", line)]
    assert len(table) >= 4  # 2 contexts x 2 batches (+ the trace's none: its rows are named)
    assert "| context | batch | step p50 ms |" in summary
    assert "trace: " in summary
    assert "| gemm |" in summary
    if has_transformers:
        assert re.search(r"HF `generate` .* -> [\d.]+x", summary)
    assert summary.rstrip().splitlines()[-1] in run.stdout


def test_steps_past_the_budget_are_skipped_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no step fitting in what is left of the budget, none runs; each says why, and the
    archive and summary are still written."""
    monkeypatch.setattr(gpu_check, "MIN_STEP_S", 1e9)
    out = tmp_path / "out"
    rc = gpu_check.main(["--dry-run", "--out", str(out), "--work", str(tmp_path / "w")])
    assert rc == 0
    steps = json.loads(_members(out / "gpu-check.tgz")["gpu-check/steps.json"])
    assert [s["name"] for s in steps] == STEPS
    assert all(s["status"] == "skipped" and "budget spent" in s["reason"] for s in steps)
    assert all(s["commands"] == [] for s in steps)
    summary = (out / "summary.txt").read_text()
    assert summary.count("budget spent (450 s)") == len(STEPS)
    assert "no profile results" in summary


def test_only_runs_the_named_steps(tmp_path: Path) -> None:
    rc = gpu_check.main(
        ["--dry-run", "--only", "wheels", "--out", str(tmp_path), "--work", str(tmp_path / "w")]
    )
    assert rc == 0
    steps = json.loads(_members(tmp_path / "gpu-check.tgz")["gpu-check/steps.json"])
    assert {s["name"]: s["reason"] for s in steps if s["name"] != "wheels"} == {
        name: "not in --only" for name in STEPS[1:]
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--budget", "3"], "--budget must be"),
        (["--only", "trace,bogus"], "unknown step(s) bogus"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        gpu_check.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
