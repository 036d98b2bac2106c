"""The shapes of generated Prometheus rules: recording rules, alerts with runbooks, groups.

Recording rules are named `gpumetrics:<what>:<window>` (DESIGN.md §3.2 and §4: colons only in
our recording rules); alerts carry `labels.severity` and the annotations `summary`,
`description` (Go templates over `$labels` / `$value`) and `runbook_url`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "DEFAULT_CONFIG",
    "THERMAL_AND_POWER_REASONS",
    "Alert",
    "Recording",
    "RuleConfig",
    "RuleGroup",
    "Runbook",
    "Severity",
    "record_name",
]

#: The clock-event reasons that mean "throttled by heat or by the power delivery", as the
#: NVML source labels them (`gpumetrics.sources.nvml_fields.CLOCK_EVENT_REASONS`).
#: `sw_power_cap` is left out on purpose: a GPU at full load sits at its power cap by design.
THERMAL_AND_POWER_REASONS = (
    "hw_slowdown",
    "sw_thermal_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
)


def record_name(what: str, window: str) -> str:
    """`gpumetrics:<what>:<window>`, the one naming scheme of our recording rules."""
    return f"gpumetrics:{what}:{window}"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """Knobs of the generated rules; the defaults are what `gpumetrics render` writes.

    `exporter_job_regex` selects the scrape jobs of the gpumetrics exporter for the
    exporter-down alert (`up{job=~"..."} == 0`); the default matches any job whose name
    contains "gpumetrics". `runbook_base_url` is prefixed to `<AlertName>.md`: the default is
    the repository-relative folder; set an absolute URL (for example your fork's
    `https://github.com/<org>/<repo>/blob/main/docs/runbooks/`) so that notifications link.
    """

    exporter_job_regex: str = ".*gpumetrics.*"
    runbook_base_url: str = "docs/runbooks/"
    #: Load score at or above which an engine counts as "at capacity".
    capacity_threshold: float = 0.9
    #: KV-cache miss spike: 5m miss ratio above the 1h baseline by this much (absolute) ...
    miss_spike_margin: float = 0.2
    #: ... and above this absolute floor ...
    miss_spike_floor: float = 0.3
    #: ... while the engine looks up at least this many prompt tokens per second.
    miss_spike_min_tokens_per_second: float = 100.0
    #: KV usage (5m average) counted as saturated.
    kv_saturation: float = 0.9
    #: Share of FLOPs spent recomputing evicted or preempted KV that pages.
    recompute_flops_share: float = 0.2
    #: Batch occupancy (sequences) below which a batch counts as underfilled.
    underfilled_occupancy: float = 0.5
    #: Share of a cluster's engines at capacity that makes the fleet "at capacity".
    fleet_capacity_share: float = 0.8
    #: Share of the last 10 minutes a throttle reason may hold before it pages.
    throttle_share: float = 0.25
    throttle_reasons: tuple[str, ...] = THERMAL_AND_POWER_REASONS

    def runbook_url(self, alert: str) -> str:
        return f"{self.runbook_base_url}{alert}.md"


DEFAULT_CONFIG = RuleConfig()


@dataclass(frozen=True, slots=True)
class Recording:
    """One recording rule: its `gpumetrics:<what>:<window>` name, PromQL, and meaning."""

    record: str
    expr: str
    help: str


@dataclass(frozen=True, slots=True)
class Runbook:
    """docs/runbooks/<alert>.md: what it means, likely causes, PromQL to check, what to do.

    `dashboard` is the title of the generated Grafana dashboard to open first.
    """

    dashboard: str
    meaning: str
    causes: tuple[str, ...]
    checks: tuple[tuple[str, str], ...]
    actions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alerting rule with its annotations and runbook."""

    name: str
    expr: str
    severity: Severity
    summary: str
    description: str
    runbook: Runbook
    for_: str = ""
    extra_labels: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class RuleGroup:
    """A Prometheus rule group; rules in one group run in order at one evaluation time."""

    name: str
    rules: tuple[Recording, ...] | tuple[Alert, ...]
