"""Alerts on inference engines and the fleet, each with its runbook."""

from __future__ import annotations

from ...catalog import engine as e
from . import recording as r
from .model import DEFAULT_CONFIG, Alert, RuleConfig, Runbook, Severity
from .promql import increase, sel

__all__ = ["engine_alerts", "fleet_alerts"]

_WHO = "Engine {{ $labels.engine }} ({{ $labels.model }}) on {{ $labels.instance }}"
_ONE = 'engine="<engine>", instance="<instance>"'


def _miss_spike(c: RuleConfig) -> Alert:
    miss = r.KV_MISS_RATIO["5m"]
    return Alert(
        name="KVCacheMissRatioSpike",
        expr=(
            f"{miss} > ({r.KV_MISS_RATIO_1H} offset 5m) + {c.miss_spike_margin:g}\n"
            f"and {miss} > {c.miss_spike_floor:g}\n"
            f"and {r.PREFIX_QUERIED['5m']} > {c.miss_spike_min_tokens_per_second:g}"
        ),
        for_="5m",
        severity=Severity.WARNING,
        summary="Prefix-cache miss ratio jumped above the engine's own baseline",
        description=(
            f"{_WHO} misses {{{{ $value | humanizePercentage }}}} of prompt tokens looked up "
            f"in the prefix cache over 5m, more than {c.miss_spike_margin:g} above its "
            "token-weighted miss ratio of the hour before."
        ),
        runbook=Runbook(
            dashboard="Inference engine",
            meaning=(
                "Prompts that used to find their prefix (system prompt, earlier turns of a "
                "conversation) in the KV cache no longer do, so the engine prefills them again. "
                "Time to first token rises and FLOPs go to recomputation. The alert compares "
                "the 5m miss ratio with the engine's own 1h baseline, needs an absolute floor "
                "too, and ignores engines with little traffic (an idle engine never pages)."
            ),
            causes=(
                "KV cache too small for the working set: cached prefixes are evicted before "
                "they are reused (evictions rise with the misses).",
                "Traffic mix changed: new tenants or prompts without shared prefixes; the "
                "router stopped sending a conversation to the engine that holds its prefix "
                "(session affinity / prefix-aware routing broken).",
                "The engine restarted or the cache was reset (counters restart too).",
                "A prompt-template change altered the shared system prompt.",
            ),
            checks=(
                ("Miss ratio now (5m)", f"{miss}{{{_ONE}}}"),
                ("Its baseline (1h, as of 5m ago)", f"{r.KV_MISS_RATIO_1H}{{{_ONE}}} offset 5m"),
                ("Evicted blocks per second", f"rate({sel(e.KV_EVICTED_BLOCKS, _ONE)}[5m])"),
                ("KV-cache usage", f"{r.KV_USAGE_AVG}{{{_ONE}}}"),
                (
                    "Recomputed prompt tokens per second",
                    f"rate({sel(e.RECOMPUTED_TOKENS, _ONE)}[5m])",
                ),
                ("Lookup traffic", f"{r.PREFIX_QUERIED['5m']}{{{_ONE}}}"),
                (
                    "Predicted hit ratio at 0.5x, 2x, 4x the KV pool (gpumetrics hooks)",
                    sel(e.KV_PREDICTED_HIT_RATIO, _ONE),
                ),
            ),
            actions=(
                "If evictions rose with the misses, give the cache room: more GPU memory for "
                "KV (gpu_memory_utilization), a smaller max batch, or more replicas.",
                "Before buying memory, read what it would buy: the predicted hit ratio at "
                "capacity_factor 2 and 4 (a ghost LRU of the engine's block hashes) against "
                "today's hit ratio; if 2x barely helps, the misses are not capacity misses "
                "(look at routing and the traffic mix). Size offline from a recorded trace "
                "with `gpumetrics kv-size` (docs/kv-size.md).",
                "If the router changed, restore prefix-/session-aware routing.",
                "If the traffic mix changed for good, the baseline follows within the hour and "
                "the alert resolves; raise miss_spike_margin if this traffic pattern is normal.",
            ),
        ),
    )


def _saturated(c: RuleConfig) -> Alert:
    return Alert(
        name="KVCacheSaturatedPreempting",
        expr=(f"{r.KV_USAGE_AVG} > {c.kv_saturation:g}\nand {increase(e.PREEMPTIONS, '5m')} > 0"),
        for_="10m",
        severity=Severity.WARNING,
        summary="KV cache full and the engine preempts running sequences",
        description=(
            f"{_WHO} holds its KV cache {{{{ $value | humanizePercentage }}}} full on average "
            "over 5m and preempted sequences: their KV is dropped and recomputed later."
        ),
        runbook=Runbook(
            dashboard="Inference engine",
            meaning=(
                "The engine admitted more sequences than its KV cache can hold as they grow, "
                "so it preempts (vLLM) or retracts (SGLang) running sequences. Each preemption "
                "throws away KV that must be prefilled again, and latency of the victims jumps."
            ),
            causes=(
                "Long contexts or long generations grew beyond what the admission estimated.",
                "max_num_seqs too high for the KV memory available.",
                "Less KV memory than expected: other processes on the GPU, a lower "
                "gpu_memory_utilization, a larger model or a changed KV dtype.",
            ),
            checks=(
                ("KV usage now", sel(e.KV_USAGE, _ONE)),
                ("Capacity in blocks", sel(e.KV_CAPACITY_BLOCKS, _ONE)),
                ("Preemptions per second", f"rate({sel(e.PREEMPTIONS, _ONE)}[5m])"),
                ("Mean batch size", f"{r.MEAN_BATCH_SIZE['5m']}{{{_ONE}}}"),
                (
                    "Share of FLOPs wasted on recompute",
                    f"{r.RECOMPUTE_FLOPS_SHARE['5m']}{{{_ONE}}}",
                ),
            ),
            actions=(
                "Lower max_num_seqs (or max_num_batched_tokens) so that admitted sequences "
                "fit; or raise the KV memory (gpu_memory_utilization, fp8 KV cache).",
                "Add replicas or route long-context traffic to engines with more KV memory.",
            ),
        ),
    )


def _recompute(c: RuleConfig) -> Alert:
    share = r.RECOMPUTE_FLOPS_SHARE["5m"]
    return Alert(
        name="KVRecomputeWastingFlops",
        expr=f"{share} > {c.recompute_flops_share:g}",
        for_="15m",
        severity=Severity.WARNING,
        summary="A large share of the engine's FLOPs recomputes evicted or preempted KV",
        description=(
            f"{_WHO} spends {{{{ $value | humanizePercentage }}}} of its FLOPs recomputing "
            "KV that had been evicted or preempted (5m)."
        ),
        runbook=Runbook(
            dashboard="Inference engine",
            meaning=(
                "FLOPs counted by the engine include prefills of tokens whose KV existed "
                "before and was thrown away. Above the threshold, a sizeable slice of the "
                "GPU's work produces nothing new; the attention part of that cost grows with "
                "the square of the conversation length."
            ),
            causes=(
                "Preemptions under KV pressure (see KVCacheSaturatedPreempting).",
                "Evictions of idle conversations' prefixes that then come back.",
            ),
            checks=(
                ("Recompute share", f"{share}{{{_ONE}}}"),
                ("Recomputed tokens per second", f"rate({sel(e.RECOMPUTED_TOKENS, _ONE)}[5m])"),
                ("Preemptions per second", f"rate({sel(e.PREEMPTIONS, _ONE)}[5m])"),
                ("Evictions per second", f"rate({sel(e.KV_EVICTED_BLOCKS, _ONE)}[5m])"),
            ),
            actions=(
                "Relieve KV pressure: fewer concurrent sequences, more KV memory, or more "
                "replicas; keep conversations on the engine that caches them.",
                "If preemptions dominate, switch the preemption mode to swap where the engine "
                "supports it and host memory allows.",
            ),
        ),
    )


def _underfilled(c: RuleConfig) -> Alert:
    occupancy = r.BATCH_OCCUPANCY_SEQUENCES["5m"]
    return Alert(
        name="BatchUnderfilledWhileQueueing",
        expr=(
            f"{occupancy} < {c.underfilled_occupancy:g}\n"
            f"and min_over_time({sel(e.WAITING_REQUESTS)}[5m]) > 0\n"
            f"and {r.KV_USAGE_AVG} < {c.kv_saturation:g}"
        ),
        for_="10m",
        severity=Severity.WARNING,
        summary="Requests queue although the batch has room and the KV cache is not full",
        description=(
            f"{_WHO} runs batches {{{{ $value | humanizePercentage }}}} full (of max_num_seqs) "
            "while requests wait in its queue and KV usage is below "
            f"{c.kv_saturation:g}."
        ),
        runbook=Runbook(
            dashboard="Inference engine",
            meaning=(
                "Neither of the two load constraints binds (batch slots and KV cache both have "
                "room) yet requests wait: the scheduler is held back by something else, and "
                "the GPU does less work per step than it could."
            ),
            causes=(
                "The token budget per step (max_num_batched_tokens) binds: long prompts fill "
                "it with few sequences (check token occupancy).",
                "Chunked prefill or scheduler policy admits slowly; a stuck or very long "
                "request blocks the queue head.",
                "The engine's max_num_seqs metric is stale or larger than the value in effect.",
            ),
            checks=(
                ("Sequence occupancy", f"{occupancy}{{{_ONE}}}"),
                ("Token occupancy", f"{r.BATCH_OCCUPANCY_TOKENS['5m']}{{{_ONE}}}"),
                ("Queue depth", sel(e.WAITING_REQUESTS, _ONE)),
                ("Sequence limit", sel(e.MAX_BATCH_SEQUENCES, _ONE)),
                ("KV usage", f"{r.KV_USAGE_AVG}{{{_ONE}}}"),
            ),
            actions=(
                "If token occupancy is near 1, raise max_num_batched_tokens (memory allowing) "
                "or enable chunked prefill so decode sequences keep flowing.",
                "Look at the engine's scheduler logs for requests stuck at the queue head.",
            ),
        ),
    )


def _fleet(c: RuleConfig) -> Alert:
    share = f"{r.CLUSTER_ENGINES_AT_CAPACITY} / {r.CLUSTER_ENGINES}"
    return Alert(
        name="FleetAtCapacity",
        expr=f"{share} >= {c.fleet_capacity_share:g}\nand {r.CLUSTER_WAITING} > 0",
        for_="15m",
        severity=Severity.CRITICAL,
        summary="Most engines of the cluster are at capacity and requests queue",
        description=(
            "{{ $value | humanizePercentage }} of the engines in cluster "
            '"{{ $labels.cluster }}" region "{{ $labels.region }}" have a load score of at '
            f"least {c.capacity_threshold:g} while requests wait."
        ),
        runbook=Runbook(
            dashboard="Fleet capacity",
            meaning=(
                "An engine's load score is the larger of its batch occupancy and its KV usage, "
                "so 1 means it runs at its binding constraint. When most engines of a cluster "
                "are there and requests still queue, the fleet needs more capacity: latency "
                "grows with the queue."
            ),
            causes=(
                "Traffic grew beyond the provisioned replicas.",
                "Replicas were lost (GPU lost, node drained) and the rest absorb their load.",
                "Requests became longer (context or output), using more KV per request.",
            ),
            checks=(
                ("Share of engines at capacity", share),
                ("Load by engine", f"sort_desc({r.ENGINE_LOAD})"),
                ("Queued requests by cluster", r.CLUSTER_WAITING),
                (
                    "Most engines per cluster in the last day",
                    f"max_over_time({r.CLUSTER_ENGINES}[1d])",
                ),
            ),
            actions=(
                "Scale out (more replicas or GPUs), or shed / reroute traffic to another "
                "cluster or region.",
                "If engines went missing, follow GPULost and GpumetricsExporterDown.",
            ),
        ),
    )


def engine_alerts(config: RuleConfig = DEFAULT_CONFIG) -> tuple[Alert, ...]:
    return (_miss_spike(config), _saturated(config), _recompute(config), _underfilled(config))


def fleet_alerts(config: RuleConfig = DEFAULT_CONFIG) -> tuple[Alert, ...]:
    return (_fleet(config),)
