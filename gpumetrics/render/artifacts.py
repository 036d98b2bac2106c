"""The list of generated files, and writing or checking them against the repository.

Files are written atomically (a temporary file beside the target, then `os.replace`, as
prometheus_client's `write_to_textfile` does): a reader never sees half a dashboard, and a
failure leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .dashboards.provisioning import dashboard_files
from .deployables import exporter_files
from .metrics_md import render_metrics_md
from .rules import rule_files
from .rules.model import DEFAULT_CONFIG, RuleConfig
from .runbooks import runbook_files

__all__ = [
    "ARTIFACTS",
    "Artifact",
    "artifacts",
    "check",
    "find_checkout",
    "write",
    "write_atomic",
]


@dataclass(frozen=True, slots=True)
class Artifact:
    """A file under the repository root and the function that renders its content."""

    path: str
    render: Callable[[], str]


def artifacts(config: RuleConfig = DEFAULT_CONFIG) -> tuple[Artifact, ...]:
    """Every generated file, with the rules (alerts/ and the Helm chart's copies) and runbook
    index rendered under `config` (its `runbook_base_url`, for one)."""
    return (
        Artifact("METRICS.md", render_metrics_md),
        *(Artifact(path, render) for path, render in dashboard_files()),
        *(Artifact(path, render) for path, render in rule_files(config)),
        *(Artifact(path, render) for path, render in runbook_files(config)),
        *(Artifact(path, render) for path, render in exporter_files(config)),
    )


#: The files as the repository holds them (the default rule config).
ARTIFACTS: tuple[Artifact, ...] = artifacts()


def find_checkout(start: Path) -> Path | None:
    """The gpumetrics checkout holding `start`: the nearest directory, `start` or above, with
    a pyproject.toml whose project is named gpumetrics; None when there is none."""
    for directory in (start, *start.parents):
        pyproject = directory / "pyproject.toml"
        if not pyproject.is_file():
            continue
        try:
            project = tomllib.loads(pyproject.read_text()).get("project", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        if isinstance(project, dict) and project.get("name") == "gpumetrics":
            return directory
    return None


def write_atomic(target: Path, content: str) -> None:
    """Replace `target` with `content` (UTF-8) in one rename; on any failure `target` is left
    as it was and the temporary file is removed. A new file gets the umask's permissions, an
    existing one keeps its own."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as out:
            out.write(content)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(target.stat().st_mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def write(root: Path, config: RuleConfig = DEFAULT_CONFIG) -> list[str]:
    """Regenerate every artifact under `root` (rules under `config`); returns the paths that
    changed."""
    changed = []
    for artifact in artifacts(config):
        target = root / artifact.path
        content = artifact.render()
        if not target.exists() or target.read_text() != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, content)
            changed.append(artifact.path)
    return changed


def check(root: Path, config: RuleConfig = DEFAULT_CONFIG) -> list[str]:
    """Paths whose committed content differs from what the catalog renders now (rules under
    `config`)."""
    return [
        a.path
        for a in artifacts(config)
        if not (root / a.path).exists() or (root / a.path).read_text() != a.render()
    ]
