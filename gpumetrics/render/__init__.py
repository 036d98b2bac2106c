"""Generated artifacts (METRICS.md, Grafana dashboards, Prometheus rules, runbooks), all from the
catalog."""

from .artifacts import ARTIFACTS, Artifact, check, write

__all__ = ["ARTIFACTS", "Artifact", "check", "write"]
