"""Generated artifacts (METRICS.md, Grafana dashboards, Prometheus rules, runbooks), all from the
catalog."""

from .artifacts import ARTIFACTS, Artifact, check, find_checkout, write, write_atomic

__all__ = ["ARTIFACTS", "Artifact", "check", "find_checkout", "write", "write_atomic"]
