"""Per-engine name maps into the catalog's engine families (REFERENCE.md §5).

Each name below was checked against the engine's source: vLLM `vllm/v1/metrics/loggers.py`
(PrometheusStatLogger), `vllm/v1/metrics/stats.py` (PromptTokenStats) and
`vllm/v1/spec_decode/metrics.py` (SpecDecodingProm), v0.32 era; SGLang
`python/sglang/srt/metrics/collector.py` (SchedulerMetricsCollector,
TokenizerMetricsCollector, the HiCache/radix-cache collector).

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

`vllm:prompt_tokens_recomputed_total` is deliberately not mapped. PromptTokenStats counts there
the last token of a prompt that was wholly in the prefix cache (vLLM computes it anyway, since
a forward pass needs one input token): at most one token per request, already inside
`source="local_compute"`. It is not re-prefill after eviction or preemption, which vLLM's page
does not report (the stat-logger plugin does, from `prefix_cache_stats.preempted_*`), so
mapping it to `recomputed_tokens_total` would be false and anywhere else double counted.
The `kv_block_*` residency histograms are vLLM's only eviction signal, but they are sampled
(`--kv-cache-metrics-sample`): their `_count` is not the number of evictions, so
`kv_cache_evicted_blocks_total` is not derived from it. `engine_sleep_state`,
`num_requests_waiting_by_reason`, spec decode and the external (KV connector) prefix cache
map to families of their own. `cache_config_info` and `lora_requests_info` (labels
`max_lora`, `running_lora_adapters`, `waiting_lora_adapters`, value the Unix time they were
current) are relayed as the gateway info families (`info.py`: one series per distinct label
set across data-parallel ranks).

SGLang: `realtime_tokens_total{mode}` is the basis of the prefix cache: hit = prefill_cache,
queried = prefill_compute + prefill_cache (the `cache_hit_rate` gauge is last-batch only, as
are `spec_accept_rate`/`spec_accept_length`, so they are ignored); prefill_compute and decode
are also the step tokens by phase. Busy time is `forward_execution_seconds_total{category}`
(older: `gpu_execution_seconds_total`). KV: `page_size` and `num_pages` give block size and
capacity (older pages: `max_total_num_tokens` / page size, or `cache_config_info`), and
the gateway's cache config info (page_size -> block_size, num_pages -> num_gpu_blocks);
`kv_used_tokens` and `kv_evictable_tokens` (older: `num_used_tokens`) become blocks through the
page size. `evicted_tokens_total` / `load_back_tokens_total` are HiCache's GPU->host and
host->GPU traffic; `num_retracted_{input,output}_tokens_total` are what retracted requests gave
up. Scheduler series repeat per tensor/pipeline rank and are kept once (`tp_rank`, `pp_rank`,
`moe_ep_rank`); with priority scheduling a queue's total is the `priority=""` series and the
per-priority series are dropped.

TensorRT-LLM on Triton: `nv_trt_llm_request_metrics{request_type}` (scheduled = running,
waiting, max = batch limit), `nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type}`
(max/used blocks, tokens_per block, fraction), `nv_trt_llm_general_metrics{general_type=
"iteration_counter"}` (steps). Triton's `model` label names the Triton model
("tensorrt_llm"), so a configured model wins over it.

gpumetrics hooks: the catalog's own names (identity map). On a page that also carries an
engine's own names (vLLM with the gpumetrics stat-logger plugin, or any engine running our
hooks), the kind is the engine's and `apply.py` lets our families win, family by family.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from ...catalog import MetricType
from ...catalog import engine as e
from .info import InfoFromGauges, InfoRule
from .page import Exposition
from .vocabulary import CacheInfo, EngineMap, HistRule, PerBlock, PerGpu, rule, src

__all__ = ["GPUMETRICS", "MAPS", "SGLANG", "TRTLLM", "VLLM", "detect_kind"]

_CACHE_LABELS = ("block_size", "num_gpu_blocks")
_LORA_LABELS = ("max_lora", "running_lora_adapters", "waiting_lora_adapters")


def _same(*labels: str) -> tuple[tuple[str, str], ...]:
    return tuple((label, label) for label in labels)


def _cache_config(name: str, block_size: str, blocks: str, dtype: str) -> InfoRule:
    return InfoRule(
        e.CACHE_CONFIG_INFO,
        name,
        (("block_size", block_size), ("num_gpu_blocks", blocks), ("cache_dtype", dtype)),
        numeric=_CACHE_LABELS,
    )


_BY_SOURCE = "vllm:prompt_tokens_by_source_total"

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
        rule(e.PROMPT_TOKENS, src("vllm:prompt_tokens_total")),
        rule(
            e.PROMPT_CACHED_TOKENS,
            src("vllm:prompt_tokens_cached_total"),
            src(_BY_SOURCE, source="local_cache_hit"),
        ),
        rule(e.GENERATED_TOKENS, src("vllm:generation_tokens_total")),
        rule(e.FINISHED_REQUESTS, src("vllm:request_success_total")),
        rule(e.PROMPT_KV_TOKENS, src(_BY_SOURCE, source="local_compute"), origin="computed"),
        rule(e.PROMPT_KV_TOKENS, src(_BY_SOURCE, source="local_cache_hit"), origin="local_cache"),
        rule(e.PROMPT_KV_TOKENS, src(_BY_SOURCE, source="external_kv_transfer"), origin="external"),
        rule(e.EXTERNAL_PREFIX_QUERIED, src("vllm:external_prefix_cache_queries_total")),
        rule(e.EXTERNAL_PREFIX_HIT, src("vllm:external_prefix_cache_hits_total")),
        rule(e.WAITING_BY_REASON, src("vllm:num_requests_waiting_by_reason")),
        rule(e.SLEEP_STATE, src("vllm:engine_sleep_state")),
        rule(e.SPEC_DRAFTS, src("vllm:spec_decode_num_drafts_total")),
        rule(e.SPEC_DRAFT_TOKENS, src("vllm:spec_decode_num_draft_tokens_total")),
        rule(e.SPEC_ACCEPTED_TOKENS, src("vllm:spec_decode_num_accepted_tokens_total")),
        rule(e.SPEC_POSITION_ACCEPTED, src("vllm:spec_decode_num_accepted_tokens_per_pos_total")),
        rule(e.STEPS, src("vllm:iteration_tokens_total_count"), phase="mixed"),
        rule(
            e.STEP_TOKENS,
            src(_BY_SOURCE, source="local_compute"),
            src("vllm:prompt_tokens_total"),
            phase="prefill",
        ),
        rule(e.STEP_TOKENS, src("vllm:generation_tokens_total"), phase="decode"),
    ),
    histograms=(
        HistRule(e.TTFT, ("vllm:time_to_first_token_seconds",)),
        HistRule(e.ITL, ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")),
        HistRule(e.E2E, ("vllm:e2e_request_latency_seconds",)),
        HistRule(e.REQUEST_PREFILL_COMPUTED, ("vllm:request_prefill_kv_computed_tokens",)),
        HistRule(e.KV_BLOCK_LIFETIME, ("vllm:kv_block_lifetime_seconds",)),
        HistRule(e.KV_BLOCK_IDLE, ("vllm:kv_block_idle_before_evict_seconds",)),
        HistRule(e.KV_BLOCK_REUSE_GAP, ("vllm:kv_block_reuse_gap_seconds",)),
    ),
    cache_info=CacheInfo("vllm:cache_config_info", "block_size", "num_gpu_blocks", "engine"),
    infos=(
        _cache_config("vllm:cache_config_info", "block_size", "num_gpu_blocks", "cache_dtype"),
        InfoRule(
            e.LORA_ADAPTERS_INFO,
            "vllm:lora_requests_info",
            _same(*_LORA_LABELS),
            numeric=("max_lora",),
            value=None,
        ),
    ),
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
    total_labels=("priority",),
    rules=(
        rule(e.RUNNING_SEQUENCES, src("sglang:num_running_reqs")),
        rule(e.WAITING_REQUESTS, src("sglang:num_queue_reqs")),
        rule(e.KV_USAGE, src("sglang:token_usage")),
        rule(e.PREFIX_QUERIED, src(_REALTIME, mode="prefill_compute")),
        rule(e.PREFIX_QUERIED, src(_REALTIME, mode="prefill_cache")),
        rule(e.PREFIX_HIT, src(_REALTIME, mode="prefill_cache")),
        rule(e.STEP_TOKENS, src(_REALTIME, mode="prefill_compute"), phase="prefill"),
        rule(e.STEP_TOKENS, src(_REALTIME, mode="decode"), phase="decode"),
        rule(
            e.STEP_BUSY,
            src("sglang:forward_execution_seconds_total"),
            src("sglang:gpu_execution_seconds_total"),
        ),
        rule(e.PREEMPTIONS, src("sglang:num_retracted_requests_total")),
        rule(e.PREEMPTED_TOKENS, src("sglang:num_retracted_input_tokens_total")),
        rule(e.PREEMPTED_TOKENS, src("sglang:num_retracted_output_tokens_total")),
        rule(e.PROMPT_KV_TOKENS, src(_REALTIME, mode="prefill_compute"), origin="computed"),
        rule(e.PROMPT_KV_TOKENS, src(_REALTIME, mode="prefill_cache"), origin="local_cache"),
        rule(e.KV_BLOCK_SIZE, src("sglang:page_size")),
        rule(e.KV_CAPACITY_BLOCKS, src("sglang:num_pages")),
        rule(e.KV_EVICTED_TOKENS, src("sglang:evicted_tokens_total")),
        rule(e.KV_LOADED_TOKENS, src("sglang:load_back_tokens_total")),
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
    infos=(_cache_config("sglang:cache_config_info", "page_size", "num_pages", "cache_dtype"),),
    infos_from_gauges=(
        InfoFromGauges(e.CACHE_CONFIG_INFO, "sglang:page_size", "sglang:num_pages", *_CACHE_LABELS),
    ),
    per_block=(
        PerBlock(e.KV_USED_BLOCKS, (src("sglang:kv_used_tokens"), src("sglang:num_used_tokens"))),
        PerBlock(e.KV_EVICTABLE_BLOCKS, (src("sglang:kv_evictable_tokens"),)),
        PerBlock(e.KV_CAPACITY_BLOCKS, (src("sglang:max_total_num_tokens"),)),
    ),
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
    # Engine and GPU info are left out (the sidecar emits its own); the gateway's info
    # families are relayed as they are.
    rules=tuple(
        rule(spec, src(spec.name))
        for spec in e.ALL
        if spec.type in (MetricType.GAUGE, MetricType.COUNTER)
    ),
    histograms=tuple(
        HistRule(spec, (spec.name,)) for spec in e.ALL if spec.type is MetricType.HISTOGRAM
    ),
    infos=(
        InfoRule(
            e.CACHE_CONFIG_INFO,
            e.CACHE_CONFIG_INFO.name,
            _same(*_CACHE_LABELS, "cache_dtype"),
            numeric=_CACHE_LABELS,
        ),
    ),
)

#: Every map by kind, in auto-detection order: the engines' own names first, our hooks' last
#: (an engine running them beside its own metrics is that engine, with our families winning
#: family by family, see `apply.py`).
MAPS: Final[Mapping[str, EngineMap]] = MappingProxyType(
    {m.kind: m for m in (VLLM, SGLANG, TRTLLM, GPUMETRICS)}
)


def detect_kind(exposition: Exposition) -> str | None:
    """The first kind in MAPS order with a series named with its prefix, else None."""
    for engine_map in MAPS.values():
        if exposition.has_prefix(engine_map.prefix):
            return engine_map.kind
    return None
