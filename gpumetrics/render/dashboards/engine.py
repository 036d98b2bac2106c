"""Inference engine: KV cache, prefix caching, recompute, batching and latency of engines."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import timeseries

from ...catalog import MetricSpec
from ...catalog import engine as e
from ..rules import DEFAULT_CONFIG
from ..rules import recording as r
from ..rules.promql import rate, sel
from ..rules.recording import help_of
from .panels import LATENCY_PANELS, Q, Row, Steps, build_dashboard, describe, timeseries_panel
from .variables import (
    ENGINE,
    RATE_INTERVAL,
    datasource_variable,
    engine_variables,
    fleet_variables,
)

__all__ = ["ANSWERS", "TITLE", "engine_dashboard"]

TITLE = "Inference engine"
ANSWERS = (
    "Is the KV cache the bottleneck, and what does that cost? KV usage and blocks, prefix-cache "
    "hit and miss ratios, evictions, recomputed tokens and the FLOPs they waste, preemptions; "
    "batch size and tokens per step against their limits; TTFT, inter-token latency and "
    "request duration percentiles; how long KV blocks live and idle before eviction; how many "
    "draft tokens speculative decoding gets accepted."
)

_C = DEFAULT_CONFIG
_WHO = "{{engine}} on {{instance}}"


def _kv() -> Row:
    blocks: tuple[tuple[str, MetricSpec], ...] = (
        ("used", e.KV_USED_BLOCKS),
        ("evictable", e.KV_EVICTABLE_BLOCKS),
        ("capacity", e.KV_CAPACITY_BLOCKS),
    )
    return Row(
        "KV cache",
        [
            timeseries_panel(
                "KV-cache usage",
                describe(e.KV_USAGE),
                "percentunit",
                [Q(sel(e.KV_USAGE.name, ENGINE), _WHO)],
                steps=((None, "green"), (0.8, "orange"), (_C.kv_saturation, "red")),
                show_thresholds=True,
                min_value=0.0,
                max_value=1.0,
            ),
            timeseries_panel(
                "KV-cache blocks",
                " ".join(describe(spec) for _, spec in blocks),
                "short",
                [Q(sel(spec.name, ENGINE), f"{what} {_WHO}") for what, spec in blocks],
                axis_label="blocks",
                min_value=0.0,
            ),
            timeseries_panel(
                "Prefix-cache hit and miss ratio",
                f"{help_of(r.KV_HIT_RATIO['5m'])} {help_of(r.KV_MISS_RATIO['5m'])} "
                f"{help_of(r.KV_MISS_RATIO_1H)} {help_of(r.EXTERNAL_KV_HIT_RATIO['5m'])} The "
                "dashed line is the miss-spike alert's floor.",
                "percentunit",
                [
                    Q(sel(r.KV_HIT_RATIO["5m"], ENGINE), f"hit {_WHO}"),
                    Q(sel(r.EXTERNAL_KV_HIT_RATIO["5m"], ENGINE), f"external hit {_WHO}"),
                    Q(sel(r.KV_MISS_RATIO["5m"], ENGINE), f"miss {_WHO}"),
                    Q(sel(r.KV_MISS_RATIO["1m"], ENGINE), f"miss 1m {_WHO}"),
                    Q(sel(r.KV_MISS_RATIO_1H, ENGINE), f"miss 1h baseline {_WHO}"),
                ],
                steps=((None, "green"), (_C.miss_spike_floor, "orange")),
                show_thresholds=True,
                min_value=0.0,
                max_value=1.0,
            ),
            timeseries_panel(
                "Prefix-cache lookups",
                f"{describe(e.PREFIX_QUERIED)} {describe(e.PREFIX_HIT)} Below the dashed line "
                "the miss-spike alert stays silent (idle engine).",
                "short",
                [
                    Q(rate(e.PREFIX_QUERIED, RATE_INTERVAL, ENGINE), f"queried {_WHO}"),
                    Q(rate(e.PREFIX_HIT, RATE_INTERVAL, ENGINE), f"hit {_WHO}"),
                ],
                steps=((None, "orange"), (_C.miss_spike_min_tokens_per_second, "green")),
                show_thresholds=True,
                axis_label="tokens/s",
                min_value=0.0,
            ),
            timeseries_panel(
                "Evicted blocks",
                describe(e.KV_EVICTED_BLOCKS),
                "short",
                [Q(rate(e.KV_EVICTED_BLOCKS, RATE_INTERVAL, ENGINE), _WHO)],
                axis_label="blocks/s",
                min_value=0.0,
            ),
            timeseries_panel(
                "Preemptions",
                describe(e.PREEMPTIONS),
                "short",
                [Q(rate(e.PREEMPTIONS, RATE_INTERVAL, ENGINE), _WHO)],
                steps=((None, "green"), (0.1, "orange"), (1.0, "red")),
                show_thresholds=True,
                axis_label="preemptions/s",
                min_value=0.0,
            ),
            timeseries_panel(
                "What more KV memory would buy",
                f"{describe(e.KV_PREDICTED_HIT_RATIO)} The measured hit ratio (5m, in tokens) is "
                "the line to compare with: the gap to capacity_factor 2 is what doubling the "
                "KV pool would buy.",
                "percentunit",
                [
                    Q(
                        sel(e.KV_PREDICTED_HIT_RATIO, ENGINE),
                        f"predicted at {{{{capacity_factor}}}}x {_WHO}",
                    ),
                    Q(sel(r.KV_HIT_RATIO["5m"], ENGINE), f"measured hit {_WHO}"),
                ],
                min_value=0.0,
                max_value=1.0,
                width=24,
            ),
        ],
    )


def _recompute() -> Row:
    share = r.RECOMPUTE_FLOPS_SHARE
    return Row(
        "Recompute: the cost of misses",
        [
            timeseries_panel(
                "Recomputed prompt tokens",
                describe(e.RECOMPUTED_TOKENS),
                "short",
                [Q(rate(e.RECOMPUTED_TOKENS, RATE_INTERVAL, ENGINE), _WHO)],
                axis_label="tokens/s",
                min_value=0.0,
                width=8,
            ),
            timeseries_panel(
                "FLOPs wasted on recompute",
                describe(e.RECOMPUTED_FLOPS),
                "flops",
                [Q(rate(e.RECOMPUTED_FLOPS, RATE_INTERVAL, ENGINE), _WHO)],
                min_value=0.0,
                width=8,
            ),
            timeseries_panel(
                "Share of FLOPs recomputing",
                f"{help_of(share['5m'])} The KVRecomputeWastingFlops alert fires above "
                f"{_C.recompute_flops_share:g}.",
                "percentunit",
                [
                    Q(sel(share["5m"], ENGINE), f"5m {_WHO}"),
                    Q(sel(share["1m"], ENGINE), f"1m {_WHO}"),
                ],
                steps=((None, "green"), (0.1, "orange"), (_C.recompute_flops_share, "red")),
                show_thresholds=True,
                min_value=0.0,
                width=8,
            ),
        ],
    )


def _batching() -> Row:
    occupancy_steps = (
        (None, "blue"),
        (_C.underfilled_occupancy, "green"),
        (_C.capacity_threshold, "orange"),
    )
    return Row(
        "Batching",
        [
            timeseries_panel(
                "Sequences per step vs limit",
                f"{help_of(r.MEAN_BATCH_SIZE['5m'])} {describe(e.RUNNING_SEQUENCES)} "
                f"{describe(e.MAX_BATCH_SEQUENCES)}",
                "short",
                [
                    Q(sel(r.MEAN_BATCH_SIZE["5m"], ENGINE), f"mean batch {_WHO}"),
                    Q(sel(e.RUNNING_SEQUENCES.name, ENGINE), f"running {_WHO}"),
                    Q(sel(e.MAX_BATCH_SEQUENCES.name, ENGINE), f"limit {_WHO}"),
                ],
                axis_label="sequences",
                min_value=0.0,
            ),
            timeseries_panel(
                "Tokens per step vs limit",
                f"{help_of(r.MEAN_STEP_TOKENS['5m'])} {describe(e.MAX_BATCH_TOKENS)}",
                "short",
                [
                    Q(sel(r.MEAN_STEP_TOKENS["5m"], ENGINE), f"mean tokens {_WHO}"),
                    Q(sel(e.MAX_BATCH_TOKENS.name, ENGINE), f"limit {_WHO}"),
                ],
                axis_label="tokens",
                min_value=0.0,
            ),
            timeseries_panel(
                "Batch occupancy",
                f"{help_of(r.BATCH_OCCUPANCY_SEQUENCES['5m'])} "
                f"{help_of(r.BATCH_OCCUPANCY_TOKENS['5m'])} Below "
                f"{_C.underfilled_occupancy:g} with requests queued, "
                "BatchUnderfilledWhileQueueing fires.",
                "percentunit",
                [
                    Q(sel(r.BATCH_OCCUPANCY_SEQUENCES["5m"], ENGINE), f"sequences {_WHO}"),
                    Q(sel(r.BATCH_OCCUPANCY_TOKENS["5m"], ENGINE), f"tokens {_WHO}"),
                ],
                steps=occupancy_steps,
                show_thresholds=True,
                min_value=0.0,
                max_value=1.0,
            ),
            timeseries_panel(
                "Queue",
                f"{describe(e.WAITING_REQUESTS)} {describe(e.RUNNING_SEQUENCES)}",
                "short",
                [
                    Q(sel(e.WAITING_REQUESTS.name, ENGINE), f"waiting {_WHO}"),
                    Q(sel(e.RUNNING_SEQUENCES.name, ENGINE), f"running {_WHO}"),
                ],
                steps=((None, "green"), (1, "orange")),
                axis_label="requests",
                min_value=0.0,
            ),
        ],
    )


def _quantiles(title: str, spec: MetricSpec, steps: Steps) -> timeseries.Panel:
    bucket_rate = rate(f"{spec.name}_bucket", RATE_INTERVAL, ENGINE)
    buckets = f"sum by (le, instance, job, engine, model) ({bucket_rate})"
    return timeseries_panel(
        title,
        describe(
            spec,
            "p50, p90 and p99 from the histogram buckets, per engine: each engine keeps its "
            "own buckets, so quantiles are never taken over a sum of engines.",
        ),
        "s",
        [
            Q(f"histogram_quantile({q}, {buckets})", f"p{round(q * 100)} {_WHO}")
            for q in (0.5, 0.9, 0.99)
        ],
        steps=steps,
        show_thresholds=True,
        min_value=0.0,
        width=8,
    )


def _latency() -> Row:
    return Row("Latency", [_quantiles(title, spec, steps) for title, spec, steps in LATENCY_PANELS])


def _residency() -> Row:
    """vLLM's only eviction signal (--kv-cache-metrics): sampled, so quantiles, not counts."""
    neutral = ((None, "blue"),)
    return Row(
        "KV block residency (vLLM --kv-cache-metrics, sampled)",
        [
            _quantiles("Block lifetime until eviction", e.KV_BLOCK_LIFETIME, neutral),
            _quantiles("Idle time before eviction", e.KV_BLOCK_IDLE, neutral),
            _quantiles("Gap between reuses", e.KV_BLOCK_REUSE_GAP, neutral),
        ],
    )


def _throughput() -> Row:
    return Row(
        "Throughput",
        [
            timeseries_panel(
                "Tokens per second",
                f"{describe(e.PROMPT_TOKENS)} {describe(e.GENERATED_TOKENS)}",
                "short",
                [
                    Q(rate(e.PROMPT_TOKENS, RATE_INTERVAL, ENGINE), f"prompt {_WHO}"),
                    Q(rate(e.GENERATED_TOKENS, RATE_INTERVAL, ENGINE), f"generated {_WHO}"),
                ],
                axis_label="tokens/s",
                min_value=0.0,
            ),
            timeseries_panel(
                "Share of time in steps",
                describe(e.STEP_BUSY),
                "percentunit",
                [Q(rate(e.STEP_BUSY, RATE_INTERVAL, ENGINE), _WHO)],
                steps=((None, "blue"), (0.5, "green"), (0.95, "orange")),
                min_value=0.0,
                max_value=1.0,
            ),
            timeseries_panel(
                "Speculative decoding acceptance",
                f"{help_of(r.SPEC_ACCEPTANCE_RATIO['5m'])} {describe(e.SPEC_DRAFT_TOKENS)} "
                "No line: the engine does not speculate.",
                "percentunit",
                [Q(sel(r.SPEC_ACCEPTANCE_RATIO["5m"], ENGINE), _WHO)],
                min_value=0.0,
                max_value=1.0,
                width=24,
            ),
        ],
    )


def engine_dashboard() -> db.Dashboard:
    return build_dashboard(
        TITLE,
        ANSWERS,
        [datasource_variable(), *fleet_variables(), *engine_variables()],
        [_kv(), _recompute(), _batching(), _latency(), _residency(), _throughput()],
    )
