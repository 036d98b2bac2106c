"""CLI start-up, side by side: `gpumetrics --help` and `gpumetrics roofline` vs `import click`.

Each command is a fresh interpreter (what a user waits for), run `--runs` times, the
contenders interleaved run by run so the machine's load drifts over all of them alike; the
median wall time of each is reported with its ratio to `python -c "import click"`, the floor
any click CLI pays (interpreter start, site, click). Target (issue 15): `gpumetrics --help`
<= 1.5x. Both forms of `--help` are timed: the console script's (`from gpumetrics.cli import
main`) and `python -m gpumetrics`.

Usage: .venv/bin/python benchmarks/bench_cli.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

BASELINE = "import click"
TARGET = 1.5

#: name -> argv after the interpreter. The console script `gpumetrics` runs exactly the
#: first `--help` form (pip's entry-point wrapper imports gpumetrics.cli and calls main).
COMMANDS = {
    BASELINE: ["-c", "import click"],
    "gpumetrics --help": [
        "-c",
        "import sys; from gpumetrics.cli import main; sys.argv = ['gpumetrics', '--help']; main()",
    ],
    "python -m gpumetrics --help": ["-m", "gpumetrics", "--help"],
    "gpumetrics roofline (table)": [
        "-m",
        "gpumetrics",
        "roofline",
        "--model",
        "llama-3-8b",
        "--gpu",
        "h200",
        "--batch",
        "1,64",
        "--context",
        "4096",
    ],
}


@dataclass(frozen=True, slots=True)
class Row:
    command: str
    median_ms: float
    min_ms: float
    runs: int
    ratio: float  # median / the `import click` median


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def measure(runs: int) -> list[Row]:
    """Median and best wall time of each command over `runs` interleaved rounds."""
    for argv in COMMANDS.values():  # warm the file cache and .pyc files once
        _time(argv)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, argv in COMMANDS.items():
            times[name].append(_time(argv))
    base = statistics.median(times[BASELINE])
    return [
        Row(
            name,
            statistics.median(t) * 1e3,
            min(t) * 1e3,
            len(t),
            statistics.median(t) / base,
        )
        for name, t in times.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs of each command (>= 10)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    if args.runs < 10:
        parser.error("--runs must be >= 10 (a median of fewer is noise)")
    rows = measure(args.runs)
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "command": " ".join(["benchmarks/bench_cli.py", *sys.argv[1:]]),
    }
    if args.json:
        print(json.dumps({"machine": machine, "rows": [asdict(r) for r in rows]}, indent=2))
        return
    print(", ".join(f"{k} {v}" for k, v in machine.items()))
    print(f"{'command':<30} {'median ms':>10} {'best ms':>9} {'ratio':>7}")
    for row in rows:
        print(f"{row.command:<30} {row.median_ms:>10.1f} {row.min_ms:>9.1f} {row.ratio:>6.2f}x")
    help_ratio = next(r.ratio for r in rows if r.command == "gpumetrics --help")
    verdict = "meets" if help_ratio <= TARGET else "misses"
    print(f"gpumetrics --help: {help_ratio:.2f}x import click ({verdict} the {TARGET}x target)")


if __name__ == "__main__":
    main()
