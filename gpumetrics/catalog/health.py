"""The exporter's own health: per-source status, timings and errors."""

from __future__ import annotations

from .spec import Group, MetricType, Source, metric

G, C = MetricType.GAUGE, MetricType.COUNTER
EXP = Source.EXPORTER

BUILD_INFO = metric(
    "gpumetrics_build_info",
    MetricType.INFO,
    "The running gpumetrics version; value is always 1.",
    ("version",),
    source=EXP,
    group=Group.EXPORTER,
)
SOURCE_UP = metric(
    "gpumetrics_source_up",
    G,
    "1 when the source's last sampling cycle succeeded, 0 when it failed (source: nvml, gpm, "
    "infiniband, engine:<name>).",
    ("source",),
    source=EXP,
    group=Group.EXPORTER,
)
SOURCE_DURATION = metric(
    "gpumetrics_source_collection_duration_seconds",
    G,
    "Wall time of the source's last sampling cycle.",
    ("source",),
    source=EXP,
    group=Group.EXPORTER,
)
SOURCE_LAST_SUCCESS = metric(
    "gpumetrics_source_last_success_timestamp_seconds",
    G,
    "Unix time of the source's last successful sampling cycle.",
    ("source",),
    source=EXP,
    group=Group.EXPORTER,
)
SOURCE_ERRORS = metric(
    "gpumetrics_source_errors_total",
    C,
    "Sampling errors by source and code (an NVML return code name such as "
    "NVML_ERROR_GPU_IS_LOST, or timeout, parse, http_<status>, too_many_series, ...).",
    ("source", "code"),
    source=EXP,
    group=Group.EXPORTER,
)

SOURCE_STALE = metric(
    "gpumetrics_source_stale",
    G,
    "1 when the source's samples are from its last good cycle, kept because the latest cycle "
    "was rejected whole (an engine page over a limit: too_many_series, label_value_too_long, "
    "too_many_labels, too_many_label_values); 0 otherwise.",
    ("source",),
    source=EXP,
    group=Group.EXPORTER,
)

ALL = (BUILD_INFO, SOURCE_UP, SOURCE_DURATION, SOURCE_LAST_SUCCESS, SOURCE_ERRORS, SOURCE_STALE)
