"""Per-engine name maps into the catalog's engine families (REFERENCE.md §5).

vLLM: V1 names, with the older ones as fallbacks (`gpu_cache_usage_perc` before
`kv_cache_usage_perc`, `gpu_prefix_cache_{queries,hits}_total` before `prefix_cache_*`,
`time_per_output_token_seconds` before `inter_token_latency_seconds`). The old
`vllm:gpu_prefix_cache_hit_rate` gauge is ignored: a hit rate over an unknown window cannot be
turned into the hit/queried counters (DESIGN.md §3.2). Step tokens: vLLM's
`iteration_tokens_total` histogram observes prompt + generation tokens per step, so its sum is
`prompt_tokens_total + generation_tokens_total`; the catalog's per-phase split takes those two
counters (prefill prefers `prompt_tokens_by_source_total{source="local_compute"}`, the prompt
tokens actually computed, where vLLM has it), and `_count` gives the steps (phase "mixed":
V1 schedules prefill chunks and decodes in one step).

SGLang: `realtime_tokens_total{mode}` is the basis of the prefix cache: hit = prefill_cache,
queried = prefill_compute + prefill_cache (the `cache_hit_rate` gauge is last-batch only);
prefill_compute and decode are also the step tokens by phase. Scheduler series repeat per
tensor/pipeline rank and are kept once (`tp_rank`, `pp_rank`, `moe_ep_rank`).

TensorRT-LLM on Triton: `nv_trt_llm_request_metrics{request_type}` (scheduled = running,
waiting, max = batch limit), `nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type}`
(max/used blocks, tokens_per block, fraction), `nv_trt_llm_general_metrics{general_type=
"iteration_counter"}` (steps). Triton's `model` label names the Triton model
("tensorrt_llm"), so a configured model wins over it.

gpumetrics hooks: the catalog's own names (identity map).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from ...catalog import MetricType
from ...catalog import engine as e
from .page import Exposition
from .vocabulary import CacheInfo, EngineMap, HistRule, PerGpu, rule, src

__all__ = ["GPUMETRICS", "MAPS", "SGLANG", "TRTLLM", "VLLM", "detect_kind"]

VLLM: Final = EngineMap(
    kind="vllm",
    prefix="vllm:",
    model_labels=("model_name",),
    rules=(
        rule(e.RUNNING_SEQUENCES, src("vllm:num_requests_running")),
        rule(e.WAITING_REQUESTS, src("vllm:num_requests_waiting")),
        rule(e.KV_USAGE, src("vllm:kv_cache_usage_perc"), src("vllm:gpu_cache_usage_perc")),
        rule(
            e.PREFIX_QUERIED,
            src("vllm:prefix_cache_queries_total"),
            src("vllm:gpu_prefix_cache_queries_total"),
        ),
        rule(
            e.PREFIX_HIT,
            src("vllm:prefix_cache_hits_total"),
            src("vllm:gpu_prefix_cache_hits_total"),
        ),
        rule(e.PREEMPTIONS, src("vllm:num_preemptions_total")),
        rule(e.RECOMPUTED_TOKENS, src("vllm:prompt_tokens_recomputed_total")),
        rule(e.PROMPT_TOKENS, src("vllm:prompt_tokens_total")),
        rule(
            e.PROMPT_CACHED_TOKENS,
            src("vllm:prompt_tokens_cached_total"),
            src("vllm:prompt_tokens_by_source_total", source="local_cache_hit"),
        ),
        rule(e.GENERATED_TOKENS, src("vllm:generation_tokens_total")),
        rule(e.FINISHED_REQUESTS, src("vllm:request_success_total")),
        rule(e.STEPS, src("vllm:iteration_tokens_total_count"), phase="mixed"),
        rule(
            e.STEP_TOKENS,
            src("vllm:prompt_tokens_by_source_total", source="local_compute"),
            src("vllm:prompt_tokens_total"),
            phase="prefill",
        ),
        rule(e.STEP_TOKENS, src("vllm:generation_tokens_total"), phase="decode"),
    ),
    histograms=(
        HistRule(e.TTFT, ("vllm:time_to_first_token_seconds",)),
        HistRule(e.ITL, ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")),
        HistRule(e.E2E, ("vllm:e2e_request_latency_seconds",)),
    ),
    cache_info=CacheInfo("vllm:cache_config_info", "block_size", "num_gpu_blocks"),
    per_gpu=(
        PerGpu(e.FLOPS, "vllm:estimated_flops_per_gpu_total"),
        PerGpu(e.READ_BYTES, "vllm:estimated_read_bytes_per_gpu_total"),
        PerGpu(e.WRITE_BYTES, "vllm:estimated_write_bytes_per_gpu_total"),
    ),
)

_REALTIME = "sglang:realtime_tokens_total"

SGLANG: Final = EngineMap(
    kind="sglang",
    prefix="sglang:",
    model_labels=("model_name",),
    replica_labels=("tp_rank", "pp_rank", "moe_ep_rank"),
    rules=(
        rule(e.RUNNING_SEQUENCES, src("sglang:num_running_reqs")),
        rule(e.WAITING_REQUESTS, src("sglang:num_queue_reqs")),
        rule(e.KV_USAGE, src("sglang:token_usage")),
        rule(e.PREFIX_QUERIED, src(_REALTIME, mode="prefill_compute")),
        rule(e.PREFIX_QUERIED, src(_REALTIME, mode="prefill_cache")),
        rule(e.PREFIX_HIT, src(_REALTIME, mode="prefill_cache")),
        rule(e.STEP_TOKENS, src(_REALTIME, mode="prefill_compute"), phase="prefill"),
        rule(e.STEP_TOKENS, src(_REALTIME, mode="decode"), phase="decode"),
        rule(e.STEP_BUSY, src("sglang:gpu_execution_seconds_total")),
        rule(e.PREEMPTIONS, src("sglang:num_retracted_requests_total")),
        rule(e.PROMPT_TOKENS, src("sglang:prompt_tokens_total")),
        rule(e.PROMPT_CACHED_TOKENS, src("sglang:cached_tokens_total")),
        rule(e.GENERATED_TOKENS, src("sglang:generation_tokens_total")),
        rule(e.FINISHED_REQUESTS, src("sglang:num_requests_total")),
    ),
    histograms=(
        HistRule(e.TTFT, ("sglang:time_to_first_token_seconds",)),
        HistRule(
            e.ITL, ("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds")
        ),
        HistRule(e.E2E, ("sglang:e2e_request_latency_seconds",)),
    ),
    cache_info=CacheInfo("sglang:cache_config_info", "page_size", "num_pages"),
    per_gpu=(
        PerGpu(e.FLOPS, "sglang:estimated_flops_per_gpu_total"),
        PerGpu(e.READ_BYTES, "sglang:estimated_read_bytes_per_gpu_total"),
        PerGpu(e.WRITE_BYTES, "sglang:estimated_write_bytes_per_gpu_total"),
    ),
)

_REQUESTS = "nv_trt_llm_request_metrics"
_BLOCKS = "nv_trt_llm_kv_cache_block_metrics"

TRTLLM: Final = EngineMap(
    kind="trtllm",
    prefix="nv_trt_llm_",
    model_labels=("model",),
    configured_model_first=True,
    rules=(
        rule(e.RUNNING_SEQUENCES, src(_REQUESTS, request_type="scheduled")),
        rule(e.WAITING_REQUESTS, src(_REQUESTS, request_type="waiting")),
        rule(e.MAX_BATCH_SEQUENCES, src(_REQUESTS, request_type="max")),
        rule(e.KV_CAPACITY_BLOCKS, src(_BLOCKS, kv_cache_block_type="max")),
        rule(e.KV_USED_BLOCKS, src(_BLOCKS, kv_cache_block_type="used")),
        rule(e.KV_BLOCK_SIZE, src(_BLOCKS, kv_cache_block_type="tokens_per")),
        rule(e.KV_USAGE, src(_BLOCKS, kv_cache_block_type="fraction")),
        rule(
            e.STEPS,
            src("nv_trt_llm_general_metrics", general_type="iteration_counter"),
            phase="mixed",
        ),
    ),
)

GPUMETRICS: Final = EngineMap(
    kind="gpumetrics",
    prefix="gpumetrics_engine_",
    model_labels=("model",),
    # Info families are left out: the sidecar emits its own engine and GPU info.
    rules=tuple(
        rule(spec, src(spec.name))
        for spec in e.ALL
        if spec.type in (MetricType.GAUGE, MetricType.COUNTER)
    ),
    histograms=tuple(
        HistRule(spec, (spec.name,)) for spec in e.ALL if spec.type is MetricType.HISTOGRAM
    ),
)

#: Every map by kind, in auto-detection order: our hooks first (an engine running them beside
#: its own metrics is read through the richer hook series).
MAPS: Final[Mapping[str, EngineMap]] = MappingProxyType(
    {m.kind: m for m in (GPUMETRICS, VLLM, SGLANG, TRTLLM)}
)


def detect_kind(exposition: Exposition) -> str | None:
    """The first kind in MAPS order with a series named with its prefix, else None."""
    for engine_map in MAPS.values():
        if exposition.has_prefix(engine_map.prefix):
            return engine_map.kind
    return None
