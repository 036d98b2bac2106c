"""Inference-engine families (source: gpumetrics.hooks, or an engine's /metrics via a name map).

Ratios are not engine series: hit ratio is rate(hit)/rate(queried), intensity is
rate(flops)/rate(bytes), occupancy is rate(step_sequences)/rate(steps)/max — recording rules
and derive/ compute them over a known window (DESIGN.md §3.2); `serve` exports derive/'s as
the gauges of `catalog.derived`.
"""

from __future__ import annotations

from .spec import Group, MetricType, Source, metric

G, C, H = MetricType.GAUGE, MetricType.COUNTER, MetricType.HISTOGRAM
ENG = Source.ENGINE

#: Labels on every engine series: `engine` is the instance name given in the sidecar's
#: config (or by the engine itself), `model` the served model.
ENGINE_LABELS = ("engine", "model")

TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5)
E2E_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0, 300.0)
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: KV block residency (seconds): vLLM's buckets for its --kv-cache-metrics histograms
#: (vllm/v1/metrics/loggers.py, kv_cache_residency_buckets).
RESIDENCY_BUCKETS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0,
    60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
)  # fmt: skip
#: Tokens per request, 1-2-5 steps (vLLM sizes these up to max_model_len).
REQUEST_TOKEN_BUCKETS = tuple(
    float(m * 10**x) for x in range(7) for m in (1, 2, 5) if m * 10**x <= 1_000_000
)

ENGINE_INFO = metric(
    "gpumetrics_engine_info",
    MetricType.INFO,
    "An engine instance known to this exporter; kind is gpumetrics|vllm|sglang|trtllm.",
    (*ENGINE_LABELS, "kind"),
    source=ENG,
    group=Group.ENGINE_BATCH,
)
ENGINE_GPU_INFO = metric(
    "gpumetrics_engine_gpu_info",
    MetricType.INFO,
    "Which GPUs an engine runs on (declared in config), so per-GPU peaks and NVML series join "
    "engine series by gpu_uuid.",
    (*ENGINE_LABELS, "gpu", "gpu_uuid"),
    source=ENG,
    group=Group.ENGINE_BATCH,
)

# --- KV cache -----------------------------------------------------------------------------

KV_USAGE = metric(
    "gpumetrics_engine_kv_cache_usage_ratio",
    G,
    "Share of KV-cache blocks holding live sequences (vllm:kv_cache_usage_perc, "
    "sglang:token_usage).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
KV_CAPACITY_BLOCKS = metric(
    "gpumetrics_engine_kv_cache_capacity_blocks",
    G,
    "KV-cache blocks the engine allocated (vllm:cache_config_info num_gpu_blocks).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
KV_USED_BLOCKS = metric(
    "gpumetrics_engine_kv_cache_used_blocks",
    G,
    "KV-cache blocks referenced by running sequences.",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
KV_EVICTABLE_BLOCKS = metric(
    "gpumetrics_engine_kv_cache_evictable_blocks",
    G,
    "Free KV-cache blocks that still hold a cached prefix (reusable until evicted).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
KV_BLOCK_SIZE = metric(
    "gpumetrics_engine_kv_cache_block_size_tokens",
    G,
    "Tokens per KV-cache block (page size).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
PREFIX_QUERIED = metric(
    "gpumetrics_engine_prefix_cache_queried_tokens_total",
    C,
    "Prompt tokens looked up in the prefix cache (vllm:prefix_cache_queries_total).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
PREFIX_HIT = metric(
    "gpumetrics_engine_prefix_cache_hit_tokens_total",
    C,
    "Prompt tokens found in the prefix cache (vllm:prefix_cache_hits_total). "
    "Hit ratio = rate(hit) / rate(queried).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
KV_EVICTED_BLOCKS = metric(
    "gpumetrics_engine_kv_cache_evicted_blocks_total",
    C,
    "Cached KV blocks reused for other data, losing the prefix they held (idle conversations "
    "pushed out).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
RECOMPUTED_TOKENS = metric(
    "gpumetrics_engine_recomputed_tokens_total",
    C,
    "Prompt tokens prefilled again because their KV had been evicted or preempted: "
    "the cost of a miss.",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
RECOMPUTED_FLOPS = metric(
    "gpumetrics_engine_recomputed_flops_total",
    C,
    "FLOPs spent recomputing KV that had been evicted or preempted (attention term is "
    "quadratic in the conversation length).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
PREEMPTIONS = metric(
    "gpumetrics_engine_preemptions_total",
    C,
    "Running sequences preempted because KV blocks ran out (vllm:num_preemptions_total, "
    "sglang:num_retracted_requests_total).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)

KV_EVICTED_TOKENS = metric(
    "gpumetrics_engine_kv_cache_evicted_tokens_total",
    C,
    "KV tokens evicted from the GPU pool (sglang:evicted_tokens_total: HiCache moving them to "
    "host memory); the hooks count whole blocks in kv_cache_evicted_blocks_total.",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
KV_LOADED_TOKENS = metric(
    "gpumetrics_engine_kv_cache_loaded_tokens_total",
    C,
    "KV tokens copied back into the GPU pool from host memory instead of being recomputed "
    "(sglang:load_back_tokens_total): hits in a lower cache tier.",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
EXTERNAL_PREFIX_QUERIED = metric(
    "gpumetrics_engine_external_prefix_cache_queried_tokens_total",
    C,
    "Prompt tokens looked up in an external KV store through a KV connector (LMCache, "
    "Mooncake, offloading; vllm:external_prefix_cache_queries_total).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
EXTERNAL_PREFIX_HIT = metric(
    "gpumetrics_engine_external_prefix_cache_hit_tokens_total",
    C,
    "Prompt tokens found in the external KV store (vllm:external_prefix_cache_hits_total). "
    "External hit ratio = rate(hit) / rate(queried).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
PREEMPTED_TOKENS = metric(
    "gpumetrics_engine_preempted_tokens_total",
    C,
    "Tokens (prompt and generated so far) whose KV preempted or retracted sequences gave up "
    "(sglang:num_retracted_input_tokens_total + num_retracted_output_tokens_total): an upper "
    "bound on what must be prefilled again, as the prefix cache may still hold part of it.",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
)
KV_BLOCK_LIFETIME = metric(
    "gpumetrics_engine_kv_block_lifetime_seconds",
    H,
    "Time from a KV block's allocation to its eviction, for a sample of evicted blocks "
    "(vllm:kv_block_lifetime_seconds with --kv-cache-metrics; the count is sampled, not every "
    "eviction).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
    buckets=RESIDENCY_BUCKETS,
)
KV_BLOCK_IDLE = metric(
    "gpumetrics_engine_kv_block_idle_before_eviction_seconds",
    H,
    "Time an evicted KV block sat unused before eviction, for a sample of evicted blocks "
    "(vllm:kv_block_idle_before_evict_seconds): short idle times mean the pool is too small "
    "for the reuse distance of the traffic.",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
    buckets=RESIDENCY_BUCKETS,
)
KV_BLOCK_REUSE_GAP = metric(
    "gpumetrics_engine_kv_block_reuse_gap_seconds",
    H,
    "Time between consecutive uses of a KV block, for a sample of evicted blocks' recent "
    "accesses (vllm:kv_block_reuse_gap_seconds).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_KV,
    buckets=RESIDENCY_BUCKETS,
)

# --- Batching and load --------------------------------------------------------------------

RUNNING_SEQUENCES = metric(
    "gpumetrics_engine_running_sequences",
    G,
    "Sequences in the running batch (vllm:num_requests_running).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_BATCH,
)
WAITING_REQUESTS = metric(
    "gpumetrics_engine_waiting_requests",
    G,
    "Requests queued, not yet scheduled (vllm:num_requests_waiting).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_BATCH,
)
MAX_BATCH_SEQUENCES = metric(
    "gpumetrics_engine_max_batch_sequences",
    G,
    "Configured limit of sequences per step (vLLM max_num_seqs).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_BATCH,
)
MAX_BATCH_TOKENS = metric(
    "gpumetrics_engine_max_batch_tokens",
    G,
    "Configured limit of tokens per step (vLLM max_num_batched_tokens).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_BATCH,
)
WAITING_BY_REASON = metric(
    "gpumetrics_engine_waiting_requests_by_reason",
    G,
    "Queued requests by why they wait: reason=capacity (no room in the batch or KV pool) or "
    "deferred (LoRA budget, KV transfer, blocked); vllm:num_requests_waiting_by_reason.",
    (*ENGINE_LABELS, "reason"),
    source=ENG,
    group=Group.ENGINE_BATCH,
)
SLEEP_STATE = metric(
    "gpumetrics_engine_sleep_state",
    G,
    "Engine ranks in each sleep state: sleep_state=awake, weights_offloaded (sleep level 1) "
    "or discard_all (level 2); vllm:engine_sleep_state. A sleeping engine frees its GPU.",
    (*ENGINE_LABELS, "sleep_state"),
    source=ENG,
    group=Group.ENGINE_BATCH,
)
STEPS = metric(
    "gpumetrics_engine_steps_total",
    C,
    "Engine steps (forward passes) by phase prefill|decode|mixed.",
    (*ENGINE_LABELS, "phase"),
    source=ENG,
    group=Group.ENGINE_BATCH,
)
STEP_SEQUENCES = metric(
    "gpumetrics_engine_step_sequences_total",
    C,
    "Sequences summed over steps; rate(this)/rate(steps) is the mean batch size.",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_BATCH,
)
STEP_TOKENS = metric(
    "gpumetrics_engine_step_tokens_total",
    C,
    "Tokens computed, by phase prefill|decode (vllm:iteration_tokens_total's sum).",
    (*ENGINE_LABELS, "phase"),
    source=ENG,
    group=Group.ENGINE_BATCH,
)
STEP_BUSY = metric(
    "gpumetrics_engine_step_busy_seconds_total",
    C,
    "Wall time spent inside steps; rate() is the share of time the engine computes.",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_BATCH,
)
STEP_DURATION = metric(
    "gpumetrics_engine_step_duration_seconds",
    H,
    "Duration of one engine step.",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_BATCH,
    buckets=STEP_BUCKETS,
)

# --- Work done ----------------------------------------------------------------------------

FLOPS = metric(
    "gpumetrics_engine_compute_flops_total",
    C,
    "FLOPs executed by steps, reported by the engine or computed from the cost model "
    "(vllm:estimated_flops_per_gpu_total x GPUs).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_WORK,
)
READ_BYTES = metric(
    "gpumetrics_engine_memory_read_bytes_total",
    C,
    "Bytes read from GPU memory by steps: weights + KV (cost model).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_WORK,
)
WRITE_BYTES = metric(
    "gpumetrics_engine_memory_write_bytes_total",
    C,
    "Bytes written to GPU memory by steps: new KV entries (cost model).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_WORK,
)
PROMPT_TOKENS = metric(
    "gpumetrics_engine_prompt_tokens_total",
    C,
    "Prompt tokens of finished requests (vllm:prompt_tokens_total).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_WORK,
)
PROMPT_CACHED_TOKENS = metric(
    "gpumetrics_engine_prompt_cached_tokens_total",
    C,
    "Prompt tokens of finished requests served from the prefix cache "
    "(vllm:prompt_tokens_cached_total, sglang:cached_tokens_total).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_WORK,
)
GENERATED_TOKENS = metric(
    "gpumetrics_engine_generated_tokens_total",
    C,
    "Output tokens generated (vllm:generation_tokens_total).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_WORK,
)
FINISHED_REQUESTS = metric(
    "gpumetrics_engine_finished_requests_total",
    C,
    "Requests finished.",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_WORK,
)

PROMPT_KV_TOKENS = metric(
    "gpumetrics_engine_prompt_kv_tokens_total",
    C,
    "Prompt tokens of prefilled requests by where their KV came from: origin=computed, "
    "local_cache (prefix-cache hit) or external (KV connector); "
    "vllm:prompt_tokens_by_source_total. vLLM counts a fully cached prompt's last token in "
    "both computed and local_cache (it is computed anyway), so the origins can exceed the "
    "prompt tokens by one per such request.",
    (*ENGINE_LABELS, "origin"),
    source=ENG,
    group=Group.ENGINE_WORK,
)
REQUEST_PREFILL_COMPUTED = metric(
    "gpumetrics_engine_request_prefill_computed_tokens",
    H,
    "Prompt tokens a finished request computed in prefill, cache hits excluded "
    "(vllm:request_prefill_kv_computed_tokens).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_WORK,
    buckets=REQUEST_TOKEN_BUCKETS,
)
SPEC_DRAFTS = metric(
    "gpumetrics_engine_spec_decode_drafts_total",
    C,
    "Speculative-decoding drafts proposed (one per sequence per step that speculates; "
    "vllm:spec_decode_num_drafts_total). Mean acceptance length = 1 + rate(accepted) / "
    "rate(drafts).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_WORK,
)
SPEC_DRAFT_TOKENS = metric(
    "gpumetrics_engine_spec_decode_draft_tokens_total",
    C,
    "Draft tokens proposed (vllm:spec_decode_num_draft_tokens_total).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_WORK,
)
SPEC_ACCEPTED_TOKENS = metric(
    "gpumetrics_engine_spec_decode_accepted_tokens_total",
    C,
    "Draft tokens accepted (vllm:spec_decode_num_accepted_tokens_total). Acceptance rate = "
    "rate(accepted) / rate(draft tokens).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_WORK,
)
SPEC_POSITION_ACCEPTED = metric(
    "gpumetrics_engine_spec_decode_position_accepted_tokens_total",
    C,
    "Draft tokens accepted at each draft position (position 0 = first; "
    "vllm:spec_decode_num_accepted_tokens_per_pos_total).",
    (*ENGINE_LABELS, "position"),
    source=ENG,
    group=Group.ENGINE_WORK,
)

# --- Latency ------------------------------------------------------------------------------

TTFT = metric(
    "gpumetrics_engine_time_to_first_token_seconds",
    H,
    "Time from arrival to the first output token (vllm:time_to_first_token_seconds).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_LATENCY,
    otel_name="gen_ai.server.time_to_first_token",
    buckets=TTFT_BUCKETS,
)
ITL = metric(
    "gpumetrics_engine_inter_token_latency_seconds",
    H,
    "Time between consecutive output tokens (vllm:inter_token_latency_seconds).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_LATENCY,
    otel_name="gen_ai.server.time_per_output_token",
    buckets=ITL_BUCKETS,
)
E2E = metric(
    "gpumetrics_engine_request_duration_seconds",
    H,
    "Time from arrival to the last output token (vllm:e2e_request_latency_seconds).",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_LATENCY,
    otel_name="gen_ai.server.request.duration",
    buckets=E2E_BUCKETS,
)

KV_PREDICTED_HIT_RATIO = metric(
    "gpumetrics_engine_kv_predicted_hit_ratio",
    G,
    "Predicted prefix-cache block hit ratio if the KV pool were capacity_factor times its "
    "size (0.5, 2, 4): a SHARDS-sampled ghost LRU of the block hashes looked up since start "
    "(docs/kv-size.md). Compare with the measured hit ratio: what more KV memory would buy.",
    (*ENGINE_LABELS, "capacity_factor"),
    source=ENG,
    group=Group.ENGINE_KV,
    otel_name="gpumetrics.engine.kv.predicted_hit_ratio",
)

HOOK_ERRORS = metric(
    "gpumetrics_engine_hook_errors_total",
    C,
    "Hook calls dropped because their arguments were invalid (negative, NaN, wrong type, "
    "unknown phase) or recording failed; the engine was not interrupted.",
    ENGINE_LABELS,
    source=ENG,
    group=Group.ENGINE_BATCH,
)

# --- gateway-facing info (Gateway API Inference Extension, model-server protocol) ----------

CACHE_CONFIG_INFO = metric(
    "gpumetrics_engine_cache_config_info",
    MetricType.INFO,
    "The engine's KV-cache layout as one info series, as an inference gateway's endpoint "
    "picker reads it (vllm:cache_config_info, sglang:cache_config_info): block_size tokens "
    "per block, num_gpu_blocks blocks in GPU memory, cache_dtype the KV element type.",
    (*ENGINE_LABELS, "block_size", "num_gpu_blocks", "cache_dtype"),
    source=ENG,
    group=Group.ENGINE_KV,
)
LORA_ADAPTERS_INFO = metric(
    "gpumetrics_engine_lora_adapters_info",
    G,
    "LoRA adapters, as vllm:lora_requests_info: max_lora adapters fit in GPU memory at "
    "once; running_lora_adapters and waiting_lora_adapters are comma-separated names. The "
    "value is the Unix time (seconds) the engine last reported them, so a reader picks the "
    "latest series.",
    (*ENGINE_LABELS, "max_lora", "running_lora_adapters", "waiting_lora_adapters"),
    source=ENG,
    group=Group.ENGINE_BATCH,
)

ALL = (
    ENGINE_INFO,
    ENGINE_GPU_INFO,
    KV_USAGE,
    KV_CAPACITY_BLOCKS,
    KV_USED_BLOCKS,
    KV_EVICTABLE_BLOCKS,
    KV_BLOCK_SIZE,
    PREFIX_QUERIED,
    PREFIX_HIT,
    KV_EVICTED_BLOCKS,
    KV_EVICTED_TOKENS,
    KV_LOADED_TOKENS,
    EXTERNAL_PREFIX_QUERIED,
    EXTERNAL_PREFIX_HIT,
    PREEMPTED_TOKENS,
    KV_BLOCK_LIFETIME,
    KV_BLOCK_IDLE,
    KV_BLOCK_REUSE_GAP,
    RECOMPUTED_TOKENS,
    RECOMPUTED_FLOPS,
    PREEMPTIONS,
    RUNNING_SEQUENCES,
    WAITING_REQUESTS,
    MAX_BATCH_SEQUENCES,
    MAX_BATCH_TOKENS,
    WAITING_BY_REASON,
    SLEEP_STATE,
    STEPS,
    STEP_SEQUENCES,
    STEP_TOKENS,
    STEP_BUSY,
    STEP_DURATION,
    FLOPS,
    READ_BYTES,
    WRITE_BYTES,
    PROMPT_TOKENS,
    PROMPT_CACHED_TOKENS,
    GENERATED_TOKENS,
    FINISHED_REQUESTS,
    PROMPT_KV_TOKENS,
    REQUEST_PREFILL_COMPUTED,
    SPEC_DRAFTS,
    SPEC_DRAFT_TOKENS,
    SPEC_ACCEPTED_TOKENS,
    SPEC_POSITION_ACCEPTED,
    TTFT,
    ITL,
    E2E,
    KV_PREDICTED_HIT_RATIO,
    HOOK_ERRORS,
    CACHE_CONFIG_INFO,
    LORA_ADAPTERS_INFO,
)

#: Families only engines' own pages carry: none since the hooks' detail calls
#: (`gpumetrics.hooks.detail_hooks`) record speculative decoding, prompt KV by origin, the
#: external prefix cache, host offload, preempted tokens, waiting by reason, sleep state and
#: sampled block residency. Kept (empty) for readers that subtract it.
PAGE_ONLY: frozenset[str] = frozenset()
