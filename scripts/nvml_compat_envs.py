#!/usr/bin/env python3
"""One small directory per pinned nvidia-ml-py release, for the NVML compatibility test
(tests/sources/test_nvml_compat.py, pytest marker `nvml_compat`).

Each is `pip install --target <cache>/nvml-compat/<version> nvidia-ml-py==<version>` (pynvml is
one pure-Python file, no dependencies), cached between runs in
`${XDG_CACHE_HOME:-~/.cache}/gpumetrics/nvml-compat/<version>`. A test runs gpumetrics with
`PYTHONPATH=<that dir>:<repo>` and the current interpreter, so that release's pynvml shadows
the installed one and everything else comes from the current environment.

    python scripts/nvml_compat_envs.py             # the pinned releases
    python scripts/nvml_compat_envs.py 13.580.65   # any others

Prints `<version> <dir>` per release. Exit 2 with a one-line error when pip fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

#: The oldest release pyproject allows, the one on the real H200 image (which lacks
#: nvmlClocksThrottleReasonBoardLimit) and the newest at the time of writing (2026-12).
PINNED = ("12.560.30", "13.610.43", "13.615.71")


def cache_root() -> Path:
    """`${XDG_CACHE_HOME:-~/.cache}/gpumetrics/nvml-compat`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gpumetrics" / "nvml-compat"


def _complete(target: Path, version: str) -> bool:
    return (target / "pynvml.py").is_file() and (
        target / f"nvidia_ml_py-{version}.dist-info"
    ).is_dir()


def ensure(version: str, root: Path | None = None) -> Path:
    """The directory holding nvidia-ml-py `version`, installed there first if need be.

    pip installs into a temporary sibling that is renamed into place, so an interrupted
    install never leaves a half-filled cache entry. Raises RuntimeError when pip fails.
    """
    target = (root or cache_root()) / version
    if _complete(target, version):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{version}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-compile", "--target", str(partial), f"nvidia-ml-py=={version}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0 or not _complete(partial, version):
        shutil.rmtree(partial, ignore_errors=True)
        lines = (result.stderr or result.stdout).strip().splitlines()
        reason = lines[-1] if lines else f"pip exited {result.returncode}"
        raise RuntimeError(f"pip install nvidia-ml-py=={version} failed: {reason}")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def main(argv: list[str]) -> int:
    versions = argv or list(PINNED)
    try:
        for version in versions:
            print(version, ensure(version), flush=True)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"nvml_compat_envs: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
