"""The list of generated files, and writing or checking them against the repository."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .dashboards.provisioning import dashboard_files
from .deployables import exporter_files
from .metrics_md import render_metrics_md
from .rules import rule_files
from .runbooks import runbook_files

__all__ = ["ARTIFACTS", "Artifact", "check", "write"]


@dataclass(frozen=True, slots=True)
class Artifact:
    """A file under the repository root and the function that renders its content."""

    path: str
    render: Callable[[], str]


ARTIFACTS: tuple[Artifact, ...] = (
    Artifact("METRICS.md", render_metrics_md),
    *(Artifact(path, render) for path, render in dashboard_files()),
    *(Artifact(path, render) for path, render in rule_files()),
    *(Artifact(path, render) for path, render in runbook_files()),
    *(Artifact(path, render) for path, render in exporter_files()),
)


def write(root: Path) -> list[str]:
    """Regenerate every artifact under `root`; returns the paths that changed."""
    changed = []
    for artifact in ARTIFACTS:
        target = root / artifact.path
        content = artifact.render()
        if not target.exists() or target.read_text() != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            changed.append(artifact.path)
    return changed


def check(root: Path) -> list[str]:
    """Paths whose committed content differs from what the catalog renders now."""
    return [
        a.path
        for a in ARTIFACTS
        if not (root / a.path).exists() or (root / a.path).read_text() != a.render()
    ]
