"""Prometheus recording and alerting rules, generated from the catalog.

`recording` names every ratio (`gpumetrics:<what>:<window>`) that dashboards and alerts use;
`alerts_engine` / `alerts_node` hold the alerts with their runbooks; `files` renders the rule
YAML and alerts/README.md. Settings live in `RuleConfig`.
"""

from . import recording
from .files import (
    ALERTS_PATH,
    README_PATH,
    RECORDING_PATH,
    alert_groups,
    all_alerts,
    render_alerting_rules,
    render_alerts_readme,
    render_recording_rules,
    rule_files,
)
from .model import DEFAULT_CONFIG, Alert, Recording, RuleConfig, RuleGroup, Runbook, Severity
from .recording import recording_groups

__all__ = [
    "ALERTS_PATH",
    "DEFAULT_CONFIG",
    "README_PATH",
    "RECORDING_PATH",
    "Alert",
    "Recording",
    "RuleConfig",
    "RuleGroup",
    "Runbook",
    "Severity",
    "alert_groups",
    "all_alerts",
    "recording",
    "recording_groups",
    "render_alerting_rules",
    "render_alerts_readme",
    "render_recording_rules",
    "rule_files",
]
