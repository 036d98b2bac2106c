"""Derived gauges: ratios and rates that `serve` computes from its own counter history.

The counters stay the source of truth (DESIGN.md §3.2); these gauges give the same answers as
the recording rules (gpumetrics/render/rules/recording.py) over the window in their `window`
label (`serve --derived-window`, default 5m like the rules' `:rate5m`), for readers without
those rules: OTLP backends, `gpumetrics top`, a Prometheus without our rule files. The
formulas live in `gpumetrics.derive` (`derive/gauges.py`); each help text names the rule it
matches. A gauge is absent while its window holds fewer than two samples or its denominator
is zero (where the rule would give NaN).
"""

from __future__ import annotations

from .engine import ENGINE_LABELS
from .gpu import GPU_LABELS
from .network import PORT_LABELS
from .spec import Group, MetricSpec, MetricType, Source, metric

__all__ = ["ALL", "ENGINE_DERIVED", "GPU_DERIVED", "NETWORK_DERIVED", "WINDOW_LABEL"]

G = MetricType.GAUGE
#: The label that says over which window a gauge was computed ("5m", "30s").
WINDOW_LABEL = "window"
_ENGINE = (*ENGINE_LABELS, WINDOW_LABEL)
_GPU = (*GPU_LABELS, WINDOW_LABEL)


def _derived(
    name: str, help: str, labels: tuple[str, ...], otel_name: str | None = None
) -> MetricSpec:
    return metric(
        name,
        G,
        help,
        labels,
        source=Source.DERIVED,
        group=Group.DERIVED,
        otel_name=otel_name,
    )


# --- Engine: KV cache ---------------------------------------------------------------------

PREFIX_HIT_RATIO = _derived(
    "gpumetrics_engine_prefix_cache_hit_ratio",
    "Prefix-cache hit ratio in tokens: rate(hit) / rate(queried) "
    "(gpumetrics:kv_cache_hit_ratio:rate5m).",
    _ENGINE,
)
PREFIX_MISS_RATIO = _derived(
    "gpumetrics_engine_prefix_cache_miss_ratio",
    "Prefix-cache miss ratio in tokens: (rate(queried) - rate(hit)) / rate(queried) "
    "(gpumetrics:kv_cache_miss_ratio:rate5m).",
    _ENGINE,
)
RECOMPUTE_SHARE = _derived(
    "gpumetrics_engine_recompute_share_ratio",
    "Share of FLOPs spent recomputing evicted or preempted KV: rate(recomputed FLOPs) / "
    "rate(FLOPs) (gpumetrics:recompute_flops_share:rate5m).",
    _ENGINE,
)
EXTERNAL_HIT_RATIO = _derived(
    "gpumetrics_engine_external_prefix_cache_hit_ratio",
    "External (KV connector) prefix-cache hit ratio in tokens: rate(external hit) / "
    "rate(external queried) (gpumetrics:external_kv_cache_hit_ratio:rate5m).",
    _ENGINE,
)
SPEC_ACCEPTANCE_RATIO = _derived(
    "gpumetrics_engine_spec_decode_acceptance_ratio",
    "Speculative-decoding acceptance ratio: rate(accepted draft tokens) / rate(draft tokens) "
    "(gpumetrics:spec_decode_acceptance_ratio:rate5m).",
    _ENGINE,
)

KV_MEAN_USAGE = _derived(
    "gpumetrics_engine_kv_cache_mean_usage_ratio",
    "KV-cache usage averaged over the window's samples (gpumetrics:kv_cache_usage:avg5m).",
    _ENGINE,
)

# --- Engine: batching and load ------------------------------------------------------------

MEAN_BATCH = _derived(
    "gpumetrics_engine_mean_batch_sequences",
    "Mean sequences per step: rate(step sequences) / rate(steps) "
    "(gpumetrics:mean_batch_size:rate5m).",
    _ENGINE,
)
BATCH_OCCUPANCY = _derived(
    "gpumetrics_engine_batch_occupancy_ratio",
    "Mean batch over max_num_seqs, at most 1 (gpumetrics:batch_occupancy_sequences:rate5m).",
    _ENGINE,
)
BATCH_TOKEN_OCCUPANCY = _derived(
    "gpumetrics_engine_batch_token_occupancy_ratio",
    "Mean tokens per step over max_num_batched_tokens, at most 1 "
    "(gpumetrics:batch_occupancy_tokens:rate5m).",
    _ENGINE,
)
LOAD_SCORE = _derived(
    "gpumetrics_engine_load_score_ratio",
    "Load score: max(batch occupancy, mean KV-cache usage over the window); 1 = at the "
    "binding constraint (gpumetrics:engine_load_score:5m).",
    _ENGINE,
)
TOKEN_RATE = _derived(
    "gpumetrics_engine_step_tokens_per_second",
    "Tokens computed per second by phase prefill|decode: rate(step tokens).",
    (*ENGINE_LABELS, "phase", WINDOW_LABEL),
    otel_name="gpumetrics.engine.step_token_rate",
)

# --- Engine: roofline ---------------------------------------------------------------------

COMPUTE_RATE = _derived(
    "gpumetrics_engine_compute_flops_per_second",
    "Achieved FLOP/s: rate(FLOPs) (gpumetrics:compute_flops_per_second:rate5m).",
    _ENGINE,
    otel_name="gpumetrics.engine.compute_rate",
)
MEMORY_TRAFFIC = _derived(
    "gpumetrics_engine_memory_traffic_bytes_per_second",
    "Memory traffic: rate(read bytes) + rate(written bytes), read alone when the engine "
    "reports no writes (gpumetrics:memory_bytes_per_second:rate5m).",
    _ENGINE,
)
INTENSITY = _derived(
    "gpumetrics_engine_arithmetic_intensity_flops_per_byte",
    "Arithmetic intensity: FLOP/s over memory traffic (gpumetrics:arithmetic_intensity:rate5m).",
    _ENGINE,
)
MFU = _derived(
    "gpumetrics_engine_model_flops_utilization_ratio",
    "MFU by dtype: achieved FLOP/s over the summed dense peak of the engine's GPUs "
    "(gpumetrics:mfu:rate5m).",
    (*ENGINE_LABELS, "dtype", WINDOW_LABEL),
)
MBU = _derived(
    "gpumetrics_engine_memory_bandwidth_utilization_ratio",
    "MBU: memory traffic over the summed peak HBM bandwidth of the engine's GPUs "
    "(gpumetrics:mbu:rate5m).",
    _ENGINE,
)
COMPUTE_BOUND = _derived(
    "gpumetrics_engine_compute_bound",
    "Roofline bound by dtype: 1 when arithmetic intensity is at or above the ridge point of "
    "the engine's GPUs (compute-bound), 0 below it (memory-bound) "
    "(gpumetrics:compute_bound:rate5m).",
    (*ENGINE_LABELS, "dtype", WINDOW_LABEL),
)

# --- GPU and fabric -----------------------------------------------------------------------

GPU_MFU = _derived(
    "gpumetrics_gpu_model_flops_utilization_ratio",
    "MFU of one GPU by dtype: the FLOP/s of the engines on it, each engine's split evenly "
    "over its GPUs (gpumetrics_engine_gpu_info), over the GPU's dense peak.",
    (*GPU_LABELS, "dtype", WINDOW_LABEL),
)
GPU_MBU = _derived(
    "gpumetrics_gpu_memory_bandwidth_utilization_ratio",
    "MBU of one GPU: the memory traffic of the engines on it, each engine's split evenly over "
    "its GPUs, over the GPU's peak HBM bandwidth.",
    _GPU,
)
NVLINK_UTILIZATION = _derived(
    "gpumetrics_gpu_nvlink_bandwidth_utilization_ratio",
    "NVLink payload bytes per second over all links and both directions, over the GPU's "
    "peak NVLink bandwidth (both directions).",
    _GPU,
)
IB_UTILIZATION = _derived(
    "gpumetrics_ib_port_bandwidth_utilization_ratio",
    "Data bytes per second of a port by direction tx|rx over its line rate per direction.",
    (*PORT_LABELS, "direction", WINDOW_LABEL),
)

ENGINE_DERIVED = (
    PREFIX_HIT_RATIO,
    PREFIX_MISS_RATIO,
    RECOMPUTE_SHARE,
    EXTERNAL_HIT_RATIO,
    SPEC_ACCEPTANCE_RATIO,
    KV_MEAN_USAGE,
    MEAN_BATCH,
    BATCH_OCCUPANCY,
    BATCH_TOKEN_OCCUPANCY,
    LOAD_SCORE,
    TOKEN_RATE,
    COMPUTE_RATE,
    MEMORY_TRAFFIC,
    INTENSITY,
    MFU,
    MBU,
    COMPUTE_BOUND,
)
GPU_DERIVED = (GPU_MFU, GPU_MBU, NVLINK_UTILIZATION)
NETWORK_DERIVED = (IB_UTILIZATION,)
ALL = (*ENGINE_DERIVED, *GPU_DERIVED, *NETWORK_DERIVED)
