"""Generated artifacts (METRICS.md; dashboards and rules later), all from the catalog."""

from .artifacts import ARTIFACTS, Artifact, check, write

__all__ = ["ARTIFACTS", "Artifact", "check", "write"]
