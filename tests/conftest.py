"""Shared fixtures: real external tools (promtool), located or skipped with a reason.

CI sets GPUMETRICS_REQUIRE_TOOLS=1 so that a missing tool fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def require_tool(name: str) -> str:
    """Path of an executable, or skip (fail under GPUMETRICS_REQUIRE_TOOLS=1) if absent."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not installed (Debian package: apt-get install prometheus)"
        if os.environ.get("GPUMETRICS_REQUIRE_TOOLS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
