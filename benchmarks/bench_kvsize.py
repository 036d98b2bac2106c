"""KV sizing curves, side by side with the direct replay they replace (issue 12).

Cases (one command, one machine, ratios measured in the same run; DESIGN.md §7):
  exact     the whole exact curve (`exact_curve`, every capacity) of a ~3e5-lookup trace vs ONE
            single-capacity OrderedDict LRU replay (`PrefixLru`) at the capacities reaching
            50 % and 90 % of the maximum hit ratio; target: curve <= 10x one replay. Traces:
            the vendored Mooncake conversation trace (288,500 lookups) and a synthetic chat
            trace of 3e5 lookups. Parsing is outside both timings.
  sampled   SHARDS at rate 0.01 over N lookups (default 1e8) streamed from the seeded
            synthetic generator, in a child process (its own wall time and peak RSS); the
            generator alone is timed the same way and subtracted. Target: 1e8 in <= 60 s,
            <= 256 MiB.
  file      the same from a JSONL file through `gpumetrics kv-size --sample-rate 0.01 --json`
            (child process; includes JSON parsing): --file-references lookups (default 1e7),
            written to a temporary file first (not timed).
  accuracy  mean absolute error of the sampled curve (rate 0.01, seeds 0-3) against the exact
            curve of a synthetic trace of --accuracy-references lookups (default 1e7).
  ghost     the live ghost cache's cost per looked-up block at rate 0.01 (ghosts at 0.5, 1,
            2 and 4 x a pool of 100,000 blocks); target <= 1 us.

Usage: .venv/bin/python benchmarks/bench_kvsize.py [--cases exact,sampled,file,accuracy,ghost]
       [--references 1e8] [--file-references 1e7] [--accuracy-references 1e7] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gpumetrics.kvsize import (
    GhostCache,
    PrefixLru,
    ReadReport,
    SyntheticChat,
    concat,
    exact_curve,
    read_trace,
    sampled_curve,
    synthetic_chunks,
)

REPO = Path(__file__).resolve().parent.parent
MOONCAKE = REPO / "tests" / "data" / "mooncake" / "conversation_trace.jsonl.gz"
GENERATOR = SyntheticChat(conversations=1_000_000)
POOL = 100_000  # blocks of the engine's pool the ghost case predicts around


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _replay(requests: list[tuple[int, ...]], capacity: int) -> int:
    cache = PrefixLru(capacity)
    return sum(cache.access(blocks) for blocks in requests)


def case_exact(repeat: int) -> list[dict[str, Any]]:
    traces = {
        "mooncake conversation": concat(read_trace(MOONCAKE, ReadReport(str(MOONCAKE)))),
        "synthetic chat": concat(synthetic_chunks(SyntheticChat(seed=1), references=300_000)),
    }
    rows = []
    for name, trace in traces.items():
        requests = [r.block_ids for r in trace.to_requests()]
        curve_s = _best(lambda t=trace: exact_curve(t), repeat)
        curve = exact_curve(trace)
        for share in (0.5, 0.9):
            capacity = int(curve.capacity_reaching(share * curve.max_hit_ratio) or 1)
            replay_s = _best(lambda c=capacity, r=requests: _replay(r, c), repeat)
            rows.append(
                {
                    "case": "exact",
                    "trace": name,
                    "lookups": trace.references,
                    "replay_capacity": capacity,
                    "replay_share_of_max": share,
                    "curve_s": curve_s,
                    "replay_s": replay_s,
                    "ratio": curve_s / replay_s,
                }
            )
    return rows


_CHILD = """
import resource, sys, time
from gpumetrics.kvsize import SampledCurve, SyntheticChat, synthetic_chunks
n, sample = int(sys.argv[1]), sys.argv[2] == "sample"
start = time.perf_counter()
builder = SampledCurve(0.01)
for chunk in synthetic_chunks(SyntheticChat(conversations=1_000_000), references=n,
                              chunk_requests=16384):
    if sample:
        builder.add(chunk)
kept = builder.curve().sampled_references if sample else 0
seconds = time.perf_counter() - start
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, kept)
"""


_CLI_CHILD = """
import resource, sys
from gpumetrics.cli import cli
try:
    cli.main(args=sys.argv[1:], standalone_mode=False)
finally:
    sys.stderr.write(f"RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}\\n")
"""


def _child(args: list[str]) -> tuple[float, str, str]:
    """(wall s, stdout, stderr) of a child python process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=True, env=env
    )
    return time.perf_counter() - start, done.stdout, done.stderr


def case_sampled(references: int) -> list[dict[str, Any]]:
    _, out, _ = _child(["-c", _CHILD, str(references), "generate"])
    generate_s = float(out.split()[0])
    _, out, _ = _child(["-c", _CHILD, str(references), "sample"])
    total_s, rss, kept = (float(v) for v in out.split())
    return [
        {
            "case": "sampled",
            "lookups": references,
            "rate": 0.01,
            "kept_lookups": int(kept),
            "total_s": total_s,
            "generator_s": generate_s,
            "sampling_s": total_s - generate_s,
            "peak_rss_mib": rss / 2**20,
        }
    ]


def _write_jsonl(path: Path, references: int) -> int:
    lines = 0
    with path.open("w") as out:
        for chunk in synthetic_chunks(GENERATOR, references=references, chunk_requests=16384):
            ids = chunk.block_ids.tolist()
            start = 0
            for i, n in enumerate(chunk.blocks_per_request.tolist()):
                record = {
                    "timestamp": int(chunk.timestamps_ms[i]),
                    "input_length": int(chunk.input_lengths[i]),
                    "output_length": int(chunk.output_lengths[i]),
                    "hash_ids": ids[start : start + n],
                }
                out.write(json.dumps(record) + "\n")
                start += n
                lines += 1
    return lines


def case_file(references: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.jsonl"
        lines = _write_jsonl(path, references)
        size = path.stat().st_size
        args = ["kv-size", "--trace", str(path), "--sample-rate", "0.01", "--json"]
        wall, _, err = _child(["-c", _CLI_CHILD, *args])
        rss = float(err.split("RSS ")[-1])
    return [
        {
            "case": "file",
            "lookups": references,
            "lines": lines,
            "file_mib": size / 2**20,
            "wall_s": wall,
            "lookups_per_s": references / wall,
            "peak_rss_mib": rss / 2**20,
        }
    ]


def case_accuracy(references: int) -> list[dict[str, Any]]:
    chunks = list(synthetic_chunks(GENERATOR, references=references, chunk_requests=16384))
    start = time.perf_counter()
    exact = exact_curve(concat(chunks))
    exact_s = time.perf_counter() - start
    grid = np.linspace(1, exact.saturation, 2000)
    truth = exact.hit_ratio(grid)
    errors = [
        float(np.abs(sampled_curve(chunks, 0.01, seed).hit_ratio(grid) - truth).mean())
        for seed in range(4)
    ]
    return [
        {
            "case": "accuracy",
            "lookups": references,
            "exact_s": exact_s,
            "mae_by_seed": errors,
            "mae_mean": float(np.mean(errors)),
        }
    ]


def case_ghost(repeat: int) -> list[dict[str, Any]]:
    """ns per looked-up block of GhostCache.access at rate 0.01, ghosts at 0.5/1/2/4 x a pool
    of 100,000 blocks, over whole traces (each request's hashes in one call)."""
    traces = {
        "mooncake conversation (small ids)": concat(read_trace(MOONCAKE, ReadReport("m"))),
        "synthetic chat (64-bit ids)": concat(synthetic_chunks(GENERATOR, references=1_000_000)),
    }
    rows = []
    for name, trace in traces.items():
        requests = [r.block_ids for r in trace.to_requests()]

        def run(r: list[tuple[int, ...]] = requests) -> None:
            ghost = GhostCache([POOL * f for f in (0.5, 1, 2, 4)], rate=0.01)
            for blocks in r:
                ghost.access(blocks)

        seconds = _best(run, repeat)
        rows.append(
            {
                "case": "ghost",
                "trace": name,
                "lookups": trace.references,
                "rate": 0.01,
                "ns_per_block": seconds / trace.references * 1e9,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="exact,sampled,file,accuracy,ghost")
    parser.add_argument("--references", type=float, default=1e8)
    parser.add_argument("--file-references", type=float, default=1e7)
    parser.add_argument("--accuracy-references", type=float, default=1e7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cases = args.cases.split(",")
    rows: list[dict[str, Any]] = []
    if "exact" in cases:
        rows += case_exact(args.repeat)
    if "sampled" in cases:
        rows += case_sampled(int(args.references))
    if "file" in cases:
        rows += case_file(int(args.file_references))
    if "accuracy" in cases:
        rows += case_accuracy(int(args.accuracy_references))
    if "ghost" in cases:
        rows += case_ghost(args.repeat)
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
        return
    print(json.dumps(machine))
    for row in rows:
        print(" ".join(f"{k}={_fmt(v)}" for k, v in row.items()))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    return str(value)


if __name__ == "__main__":
    main()
