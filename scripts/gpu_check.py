"""gpu-check: everything a lent NVIDIA GPU machine should measure, in one run (issues 16, 17).

Run it through `scripts/gpu-check` (scripts/README.md has the device command). Steps, in
priority order, each under its own time cap and all under `--budget`; a step that fails or
times out never stops the next one, and the archive is rewritten after every step so a run cut
short still returns what it finished:

  wheels         pip-install the carried wheels (.whl/) into a site dir put on PYTHONPATH
  env            nvidia-smi -q, versions (python, torch, CUDA, nvidia-ml-py, ...), pip freeze,
                 `gpumetrics doctor --json`
  trace          `gpumetrics serve --interval 0.25 --process-memory --no-infiniband
                 --pod-attribution cgroup` (per-process utilization on real NVML) scraped
                 every 0.5 s through idle, bf16 matmul, device copy, tiny kernels: a FakeNvml
                 replay fixture (trace.tgz + trace-phases.txt, tests/data/h200/README.md)
  profile-short  `gpumetrics profile --device cuda --model 1b --batch 1,16,64,256
                 --context 1024 --calibrate --json`
  fast-decode    scripts/gpu_fast_decode_check.py, when that file exists
  profile-long   the same sweep at context 4096
  worker         `gpumetrics worker --device cuda --model 1b ... --requests 300 --json`
  hf-generate    scripts/hf_generate_check.py: HF `generate` on the same shape, batch 1 and 64
  (summary)      summary.txt: every step's status and seconds, the Markdown tables

Output: `<out>/gpu-check.tgz` (the work directory: `gpu-check/...`, every command's log under
logs/) and `<out>/summary.txt`. `--dry-run` runs every step on the CPU with the tiny model and
fake GPUs, in well under a minute (what tests/scripts/test_gpu_check.py does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import gpu_check_summary as summary
import gpu_check_trace as trace
from gpu_check_runner import Runner, Skip, StepRecord, status_of

REPO = Path(__file__).resolve().parent.parent
#: Seconds kept back from the budget for the final packing.
RESERVE_S = 5.0
#: A step is skipped, not started, with less than this left of the budget.
MIN_STEP_S = 10.0
#: The smallest --budget accepted (seconds).
BUDGET_MIN_S = 20.0
#: scripts/gpu_fast_decode_check.py: its cap, and the budget it is given for its speed cells.
FAST_DECODE_CAP_S, FAST_DECODE_BUDGET_S = 150.0, 90.0


def _py(args: argparse.Namespace) -> list[str]:
    return [args.python]


def _gm(args: argparse.Namespace) -> list[str]:
    return [args.python, "-m", "gpumetrics"]


def step_wheels(r: Runner, args: argparse.Namespace) -> None:
    wheels = sorted((REPO / ".whl").glob("*.whl"))
    if args.dry_run or args.no_wheels or not wheels:
        why = "dry run" if args.dry_run else "--no-wheels" if args.no_wheels else "no .whl/"
        raise Skip(f"{why}: nothing installed")
    site = Path(args.site)
    r.run("pip-install", [args.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
          "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(site),
          *map(str, wheels)], 120)  # fmt: skip
    r.env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])


def step_env(r: Runner, args: argparse.Namespace) -> None:
    env = r.work / "env"
    env.mkdir(exist_ok=True)
    if shutil.which("nvidia-smi"):
        r.run("nvidia-smi", ["nvidia-smi", "-q"], 30, stdout=env / "nvidia-smi-q.txt")
    elif not args.dry_run:
        r.note("nvidia-smi", ["nvidia-smi", "-q"], "not on PATH")
    versions = str(REPO / "scripts" / "gpu_check_versions.py")
    r.run("versions", [*_py(args), versions], 60, stdout=env / "versions.json")
    r.run("pip-freeze", [*_py(args), "-m", "pip", "list", "--format=freeze"], 30,
          stdout=env / "pip-freeze.txt")  # fmt: skip
    fake = ["--fake-gpus", "h200x1"] if args.dry_run else []
    r.run("doctor", [*_gm(args), "doctor", "--json", *fake], 60, stdout=env / "doctor.json")


def step_trace(r: Runner, args: argparse.Namespace) -> None:
    sizes = (
        ["--device", "cpu", "--phase-seconds", "1", "--idle-seconds", "1", "--settle-seconds",
         "0.5", "--matmul", "256", "--copy-mib", "16"]
        if args.dry_run
        else ["--device", "cuda", "--phase-seconds", str(args.phase_seconds)]
    )  # fmt: skip
    serve_extra = ["--fake-gpus", "h200x1"] if args.dry_run else ["--require-gpu"]
    trace.record(
        r,
        serve=[*_gm(args), "serve", "--interval", "0.25", "--process-memory", "--no-infiniband",
               "--pod-attribution", "cgroup", *serve_extra],
        workload=[*_py(args), str(REPO / "scripts" / "gpu_trace_workload.py"), *sizes],
        cap=args.trace_cap,
    )  # fmt: skip


def _profile(r: Runner, args: argparse.Namespace, name: str, context: str, cap: float) -> None:
    if args.dry_run:
        shape = ["--device", "cpu", "--model", "tiny", "--batch", "1,4", "--context", context,
                 "--steps", "3", "--warmup", "1"]  # fmt: skip
    else:
        shape = ["--device", "cuda", "--model", "1b", "--batch", args.batches, "--context", context]
    r.run("profile", [*_gm(args), "profile", *shape, "--calibrate",
          "--json", str(r.work / f"{name}.json")], cap, stdout=r.work / f"{name}.txt")  # fmt: skip


def step_profile_short(r: Runner, args: argparse.Namespace) -> None:
    _profile(r, args, "profile-short", "32" if args.dry_run else "1024", args.profile_cap)


def step_profile_long(r: Runner, args: argparse.Namespace) -> None:
    _profile(r, args, "profile-long", "96" if args.dry_run else "4096", args.profile_cap)


def step_fast_decode(r: Runner, args: argparse.Namespace) -> None:
    script = REPO / "scripts" / "gpu_fast_decode_check.py"
    if not script.exists():
        raise Skip("scripts/gpu_fast_decode_check.py is not in this checkout")
    # Its own --budget-s bounds its speed cells; the cap leaves room for its correctness checks.
    extra = ["--dry-run"] if args.dry_run else ["--budget-s", str(FAST_DECODE_BUDGET_S)]
    r.run("check", [*_py(args), str(script), "--out", str(r.work / "fast_decode.json"), *extra],
          FAST_DECODE_CAP_S, stdout=r.work / "fast_decode.txt")  # fmt: skip


def step_worker(r: Runner, args: argparse.Namespace) -> None:
    if args.dry_run:
        load = ["--device", "cpu", "--model", "tiny", "--kv-blocks", "64", "--max-batch", "8",
                "--requests", "12", "--arrival-rate", "40", "--think-time", "0.05"]  # fmt: skip
    else:
        load = ["--device", "cuda", "--model", "1b", "--kv-blocks", "8192", "--max-batch", "64",
                "--requests", "300", "--arrival-rate", "40", "--think-time", "0.2"]  # fmt: skip
    r.run("worker", [*_gm(args), "worker", *load, "--json"], 120, stdout=r.work / "worker.json")


def step_hf(r: Runner, args: argparse.Namespace) -> None:
    shape = (
        ["--device", "cpu", "--model", "tiny", "--batch", "1,4", "--prompt", "32", "--new", "4"]
        if args.dry_run
        else ["--device", "cuda", "--model", "1b", "--batch", "1,64", "--prompt", "1024",
              "--new", "32"]
    )  # fmt: skip
    script = str(REPO / "scripts" / "hf_generate_check.py")
    out = r.work / "hf-generate.json"
    rec = r.run("generate", [*_py(args), script, "--out", str(out), *shape], 150)
    if rec.rc == 3:  # transformers missing: the JSON says why
        rec.rc = 0
        raise Skip(json.loads(out.read_text())["skipped"])


STEPS: tuple[tuple[str, Callable[[Runner, argparse.Namespace], None]], ...] = (
    ("wheels", step_wheels),
    ("env", step_env),
    ("trace", step_trace),
    ("profile-short", step_profile_short),
    ("fast-decode", step_fast_decode),
    ("profile-long", step_profile_long),
    ("worker", step_worker),
    ("hf-generate", step_hf),
)


def pack(work: Path, out: Path, steps: Sequence[StepRecord], header: str) -> None:
    """Write steps.json and summary.txt, then (atomically) out/gpu-check.tgz and
    out/summary.txt. The raw trace/ folder is left out: trace.tgz holds it."""
    (work / "steps.json").write_text(json.dumps([asdict(s) for s in steps], indent=1) + "\n")
    text = "\n".join(summary.summary_lines(work, steps_as_dicts(steps), header)) + "\n"
    (work / "summary.txt").write_text(text)
    tmp = out / ".gpu-check.tgz.part"
    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(work.rglob("*")):
            rel = path.relative_to(work)
            if path.is_file() and rel.parts[0] != "trace":
                tar.add(path, arcname=str(Path("gpu-check") / rel))
    os.replace(tmp, out / "gpu-check.tgz")
    shutil.copyfile(work / "summary.txt", out / "summary.txt")


def steps_as_dicts(steps: Sequence[StepRecord]) -> list[dict[str, object]]:
    return [asdict(s) for s in steps]


def _commit() -> str | None:
    try:
        got = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return got.stdout.strip() or None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gpu-check", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("OUT") or "out/gpu-check"),
        help="where gpu-check.tgz and summary.txt go [$OUT, else out/gpu-check (git-ignored)]",
    )
    p.add_argument("--budget", type=float, default=450.0, help="total seconds [450]")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny model, fake GPUs")
    p.add_argument("--work", type=Path, help="work directory [a new temporary one]")
    p.add_argument("--python", default=sys.executable, help="interpreter for the steps")
    p.add_argument("--site", default="/tmp/gpu-check-site", help="where .whl/ is installed")
    p.add_argument("--no-wheels", action="store_true", help="do not install .whl/")
    p.add_argument("--only", help="comma-separated step names to run (default: all)")
    p.add_argument("--batches", default="1,16,64,256", help="profile batch sizes (GPU)")
    p.add_argument("--phase-seconds", type=float, default=9.0, help="trace: each busy phase")
    p.add_argument("--trace-cap", type=float, default=110.0)
    p.add_argument("--profile-cap", type=float, default=150.0)
    args = p.parse_args(argv)
    if args.budget < BUDGET_MIN_S:
        p.error(f"--budget must be >= {BUDGET_MIN_S:.0f} s")
    names = [n for n, _ in STEPS]
    if args.only and (bad := set(args.only.split(",")) - set(names)):
        p.error(f"unknown step(s) {', '.join(sorted(bad))}; known: {', '.join(names)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started, t0 = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-work-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", COLUMNS="200")
    # The env var first: the device machine gets the tree without .git (a git there may answer
    # for some other checkout).
    env["GPU_CHECK_COMMIT"] = env.get("GPU_CHECK_COMMIT") or _commit() or ""
    runner = Runner(work, env, t0 + args.budget - RESERVE_S, REPO)
    mode = "dry run (CPU, tiny model, fake GPUs)" if args.dry_run else "GPU"
    records: list[StepRecord] = []
    wanted = set(args.only.split(",")) if args.only else None
    for name, fn in STEPS:
        rec = StepRecord(name)
        records.append(rec)
        runner.step = rec
        start = time.monotonic()
        if wanted is not None and name not in wanted:
            rec.status, rec.reason = "skipped", "not in --only"
        elif runner.left() < MIN_STEP_S:
            rec.status, rec.reason = "skipped", f"budget spent ({args.budget:.0f} s)"
        else:
            print(f"[gpu-check] == {name} ({runner.left():.0f} s of budget left)", flush=True)
            try:
                fn(runner, args)
                rec.status, rec.reason = status_of(rec.commands)
            except Skip as exc:
                rec.status, rec.reason = "skipped", str(exc)
            except Exception as exc:  # one step's bug must not stop the others
                rec.status, rec.reason = "failed", f"gpu-check itself: {exc!r}"
        rec.seconds = time.monotonic() - start
        header = (f"gpu-check {started}, {mode}: budget {args.budget:.0f} s, "
                  f"{time.monotonic() - t0:.0f} s used")  # fmt: skip
        pack(work, args.out, records, header)
    text = (args.out / "summary.txt").read_text()
    print("\n" + text, flush=True)
    print(f"[gpu-check] wrote {args.out / 'gpu-check.tgz'}, {args.out / 'summary.txt'} "
          f"(work dir {work})", flush=True)  # fmt: skip
    return 0 if all(r.status in ("ok", "skipped") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
