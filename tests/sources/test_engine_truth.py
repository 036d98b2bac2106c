"""Bridge truth against the engines' sources: vLLM 0.32 and current SGLang pages map to
hand-computed catalog samples, older names keep working, and our families win over vLLM's
family by family when the stat-logger plugin writes them on vLLM's own page."""

from __future__ import annotations

import pytest

from gpumetrics.catalog import engine as e
from gpumetrics.samples import HistogramValue
from gpumetrics.sources.engine import EngineConfig, collection_from_text

from .test_engine_maps import URL, Values, fixture, histogram, mapped, scalars, values

QWEN3 = "Qwen/Qwen3-8B"
VLLM_TTFT_BOUNDS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
#: build_1_2_5_buckets(max_model_len=40960) in vllm/v1/metrics/loggers.py
VLLM_1_2_5 = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1e3, 2e3, 5e3, 1e4, 2e4)

# --- vLLM 0.32 ------------------------------------------------------------------------------

VLLM_032: dict[tuple[str, tuple[str, ...]], float] = {
    (e.RUNNING_SEQUENCES.name, ("v", QWEN3)): 9.0,
    (e.WAITING_REQUESTS.name, ("v", QWEN3)): 5.0,
    (e.WAITING_BY_REASON.name, ("v", QWEN3, "capacity")): 4.0,
    (e.WAITING_BY_REASON.name, ("v", QWEN3, "deferred")): 1.0,
    (e.SLEEP_STATE.name, ("v", QWEN3, "awake")): 1.0,
    (e.SLEEP_STATE.name, ("v", QWEN3, "weights_offloaded")): 0.0,
    (e.SLEEP_STATE.name, ("v", QWEN3, "discard_all")): 0.0,
    (e.KV_USAGE.name, ("v", QWEN3)): 0.73,
    (e.PREFIX_QUERIED.name, ("v", QWEN3)): 640_000.0,
    (e.PREFIX_HIT.name, ("v", QWEN3)): 256_000.0,
    (e.EXTERNAL_PREFIX_QUERIED.name, ("v", QWEN3)): 384_000.0,  # the local misses
    (e.EXTERNAL_PREFIX_HIT.name, ("v", QWEN3)): 96_000.0,
    (e.PREEMPTIONS.name, ("v", QWEN3)): 3.0,
    (e.PROMPT_TOKENS.name, ("v", QWEN3)): 640_000.0,
    (e.PROMPT_CACHED_TOKENS.name, ("v", QWEN3)): 351_988.0,  # local + external - recomputed
    (e.GENERATED_TOKENS.name, ("v", QWEN3)): 160_000.0,
    (e.FINISHED_REQUESTS.name, ("v", QWEN3)): 1_200.0,  # 1180 stop + 20 length
    (e.PROMPT_KV_TOKENS.name, ("v", QWEN3, "computed")): 288_012.0,
    (e.PROMPT_KV_TOKENS.name, ("v", QWEN3, "local_cache")): 256_000.0,
    (e.PROMPT_KV_TOKENS.name, ("v", QWEN3, "external")): 96_000.0,
    (e.STEPS.name, ("v", QWEN3, "mixed")): 52_000.0,
    (e.STEP_TOKENS.name, ("v", QWEN3, "prefill")): 288_012.0,
    (e.STEP_TOKENS.name, ("v", QWEN3, "decode")): 160_000.0,
    (e.SPEC_DRAFTS.name, ("v", QWEN3)): 50_000.0,
    (e.SPEC_DRAFT_TOKENS.name, ("v", QWEN3)): 150_000.0,  # 3 speculative tokens a draft
    (e.SPEC_ACCEPTED_TOKENS.name, ("v", QWEN3)): 90_000.0,
    (e.SPEC_POSITION_ACCEPTED.name, ("v", QWEN3, "0")): 40_000.0,
    (e.SPEC_POSITION_ACCEPTED.name, ("v", QWEN3, "1")): 30_000.0,
    (e.SPEC_POSITION_ACCEPTED.name, ("v", QWEN3, "2")): 20_000.0,
    (e.KV_BLOCK_SIZE.name, ("v", QWEN3)): 16.0,
    (e.KV_CAPACITY_BLOCKS.name, ("v", QWEN3)): 2_048.0,
    (e.ENGINE_INFO.name, ("v", QWEN3, "vllm")): 1.0,
    # Gateway info, labels as vLLM writes them (the rank and CacheConfig's other labels gone);
    # lora_requests_info keeps each label set with its Unix time.
    (e.CACHE_CONFIG_INFO.name, ("v", QWEN3, "16", "2048", "auto")): 1.0,
    (e.LORA_ADAPTERS_INFO.name, ("v", QWEN3, "4", "sql-lora", "")): 1_764_800_000.0,
    (e.LORA_ADAPTERS_INFO.name, ("v", QWEN3, "4", "sql-lora,chat-lora", "tool-lora")): (
        1_764_800_090.0
    ),
}


def test_vllm_0_32_page_maps_to_hand_computed_values() -> None:
    found = mapped("vllm_0_32.txt", name="v")
    assert scalars(found) == pytest.approx(VLLM_032)
    eng = ("v", QWEN3)
    ttft = histogram(found, (e.TTFT.name, eng))
    assert (ttft.bounds, ttft.count, ttft.sum) == (VLLM_TTFT_BOUNDS, 1_200.0, 210.5)
    assert histogram(found, (e.ITL.name, eng)).count == 158_800.0  # 160000 tokens - 1200 first
    assert histogram(found, (e.E2E.name, eng)).sum == 4_620.0
    computed = histogram(found, (e.REQUEST_PREFILL_COMPUTED.name, eng))
    assert computed.bounds == VLLM_1_2_5  # the engine's buckets (max_model_len), not ours
    assert (
        computed.counts
        == (300.0,) * 5 + (400.0, 600.0, 900.0, 1100.0, 1150.0, 1190.0) + (1200.0,) * 3
    )
    assert (computed.count, computed.sum) == (1_200.0, 286_500.0)
    lifetime = histogram(found, (e.KV_BLOCK_LIFETIME.name, eng))
    assert (lifetime.count, lifetime.sum, lifetime.counts[9]) == (4_000.0, 33_250.0, 100.0)
    assert histogram(found, (e.KV_BLOCK_IDLE.name, eng)).count == 4_000.0
    assert histogram(found, (e.KV_BLOCK_REUSE_GAP.name, eng)).count == 9_000.0
    assert len(found) == len(VLLM_032) + 7


def test_vllm_0_32_origins_follow_prompt_token_stats_invariant() -> None:
    """PromptTokenStats: computed + local_cache_hit + external - recomputed = total; the
    recomputed counter (12 here) is that overlap, not a re-prefill."""
    found = scalars(mapped("vllm_0_32.txt", name="v"))
    origins = sum(v for (name, _), v in found.items() if name == e.PROMPT_KV_TOKENS.name)
    assert origins - 12 == found[(e.PROMPT_TOKENS.name, ("v", QWEN3))]
    assert (e.RECOMPUTED_TOKENS.name, ("v", QWEN3)) not in found
    assert (e.KV_EVICTED_BLOCKS.name, ("v", QWEN3)) not in found  # residency is sampled


def test_vllm_cache_config_without_a_rank_label_counts_every_ranks_pool() -> None:
    text = (
        'vllm:num_requests_running{engine="0",model_name="m"} 1\n'
        'vllm:num_requests_running{engine="1",model_name="m"} 2\n'
        'vllm:cache_config_info{block_size="16",num_gpu_blocks="1000"} 1\n'
    )
    found = values(collection_from_text(text, EngineConfig("a", URL)))
    assert found[(e.KV_CAPACITY_BLOCKS.name, ("a", "m"))] == 2_000.0  # two pools of 1000
    per_rank = text.replace('num_gpu_blocks="1000"}', 'num_gpu_blocks="1000",engine="0"}')
    per_rank += 'vllm:cache_config_info{block_size="16",num_gpu_blocks="900",engine="1"} 1\n'
    found = values(collection_from_text(per_rank, EngineConfig("a", URL)))
    assert found[(e.KV_CAPACITY_BLOCKS.name, ("a", "m"))] == 1_900.0


# --- SGLang, current names ------------------------------------------------------------------

SGLANG_CURRENT: dict[tuple[str, tuple[str, ...]], float] = {
    (e.RUNNING_SEQUENCES.name, ("s", QWEN3)): 16.0,  # priority="" total, not 16 + 10 + 6
    (e.WAITING_REQUESTS.name, ("s", QWEN3)): 7.0,
    (e.KV_USAGE.name, ("s", QWEN3)): 0.6201171875,  # = 2540 / 4096 used blocks
    (e.KV_BLOCK_SIZE.name, ("s", QWEN3)): 16.0,  # sglang:page_size
    (e.KV_CAPACITY_BLOCKS.name, ("s", QWEN3)): 4_096.0,  # sglang:num_pages
    (e.KV_USED_BLOCKS.name, ("s", QWEN3)): 2_540.0,  # kv_used_tokens 40640 / 16
    (e.KV_EVICTABLE_BLOCKS.name, ("s", QWEN3)): 512.0,  # kv_evictable_tokens 8192 / 16
    (e.PREFIX_QUERIED.name, ("s", QWEN3)): 2_000_000.0,
    (e.PREFIX_HIT.name, ("s", QWEN3)): 800_000.0,
    (e.STEP_TOKENS.name, ("s", QWEN3, "prefill")): 1_200_000.0,
    (e.STEP_TOKENS.name, ("s", QWEN3, "decode")): 600_000.0,
    (e.PROMPT_KV_TOKENS.name, ("s", QWEN3, "computed")): 1_200_000.0,
    (e.PROMPT_KV_TOKENS.name, ("s", QWEN3, "local_cache")): 800_000.0,
    (e.STEP_BUSY.name, ("s", QWEN3)): 1_215.75,  # forward_execution: 310.5 extend + 905.25
    (e.PREEMPTIONS.name, ("s", QWEN3)): 9.0,
    (e.PREEMPTED_TOKENS.name, ("s", QWEN3)): 40_200.0,  # 36000 input + 4200 output
    (e.KV_EVICTED_TOKENS.name, ("s", QWEN3)): 250_000.0,
    (e.KV_LOADED_TOKENS.name, ("s", QWEN3)): 120_000.0,
    (e.PROMPT_TOKENS.name, ("s", QWEN3)): 2_000_000.0,
    (e.PROMPT_CACHED_TOKENS.name, ("s", QWEN3)): 800_000.0,
    (e.GENERATED_TOKENS.name, ("s", QWEN3)): 590_000.0,
    (e.FINISHED_REQUESTS.name, ("s", QWEN3)): 2_500.0,
    (e.ENGINE_INFO.name, ("s", QWEN3, "sglang")): 1.0,
    # from the page_size and num_pages gauges (no cache_config_info on current pages)
    (e.CACHE_CONFIG_INFO.name, ("s", QWEN3, "16", "4096", "")): 1.0,
}


def test_sglang_current_page_maps_to_hand_computed_values() -> None:
    found = mapped("sglang_current.txt", name="s")
    assert scalars(found) == pytest.approx(SGLANG_CURRENT)
    eng = ("s", QWEN3)
    assert (
        histogram(found, (e.TTFT.name, eng)).count,
        histogram(found, (e.TTFT.name, eng)).sum,
    ) == (
        2_500.0,
        612.0,
    )
    assert histogram(found, (e.ITL.name, eng)).count == 587_500.0  # 590000 - 2500 first tokens
    assert histogram(found, (e.E2E.name, eng)).count == 2_500.0
    assert len(found) == len(SGLANG_CURRENT) + 3


def test_sglang_capacity_from_max_tokens_and_page_size_and_never_guessed() -> None:
    labels = 'model_name="m",tp_rank="0"'
    base = (
        f"sglang:max_total_num_tokens{{{labels}}} 65536\nsglang:num_used_tokens{{{labels}}} 32768\n"
    )
    found = values(collection_from_text(base, EngineConfig("a", URL)))
    names = {name for name, _ in found}
    assert not names & {e.KV_CAPACITY_BLOCKS.name, e.KV_USED_BLOCKS.name, e.KV_BLOCK_SIZE.name}
    sized = base + f"sglang:page_size{{{labels}}} 16\n"
    found = values(collection_from_text(sized, EngineConfig("a", URL)))
    assert found[(e.KV_CAPACITY_BLOCKS.name, ("a", "m"))] == 4_096.0
    assert found[(e.KV_USED_BLOCKS.name, ("a", "m"))] == 2_048.0  # older num_used_tokens
    assert found[(e.KV_USAGE.name, ("a", "m"))] == 0.5  # derived: 2048 / 4096


def test_sglang_num_pages_wins_over_the_gateway_cache_config_info() -> None:
    labels = 'model_name="m",tp_rank="0"'
    text = (
        f"sglang:page_size{{{labels}}} 16\nsglang:num_pages{{{labels}}} 4096\n"
        'sglang:cache_config_info{model_name="m",page_size="16",num_pages="4096"} 1\n'
    )
    found = values(collection_from_text(text, EngineConfig("a", URL)))
    assert found[(e.KV_CAPACITY_BLOCKS.name, ("a", "m"))] == 4_096.0  # not 8192
    assert found[(e.KV_BLOCK_SIZE.name, ("a", "m"))] == 16.0


# --- our families on vLLM's page win, family by family --------------------------------------

_P = 'engine="0",model="Qwen/Qwen3-8B",dp_rank="0"'
PLUGIN_LINES = (
    "# TYPE gpumetrics_engine_prefix_cache_queried_tokens_total counter",
    f"gpumetrics_engine_prefix_cache_queried_tokens_total{{{_P}}} 640100",
    "# TYPE gpumetrics_engine_recomputed_tokens_total counter",
    f"gpumetrics_engine_recomputed_tokens_total{{{_P}}} 5000",
    "# TYPE gpumetrics_engine_steps_total counter",
    f'gpumetrics_engine_steps_total{{{_P},phase="prefill"}} 2000',
    f'gpumetrics_engine_steps_total{{{_P},phase="decode"}} 50000',
    "# TYPE gpumetrics_engine_compute_flops_total counter",
    f"gpumetrics_engine_compute_flops_total{{{_P}}} 1e15",
    "# TYPE gpumetrics_engine_kv_cache_usage_ratio gauge",
    f"gpumetrics_engine_kv_cache_usage_ratio{{{_P}}} 0.7",
)


@pytest.mark.parametrize("kind", ["auto", "vllm"])
def test_the_plugins_families_win_and_vllm_keeps_the_rest(kind: str) -> None:
    text = fixture("vllm_0_32.txt") + "\n".join(PLUGIN_LINES) + "\n"
    found = values(collection_from_text(text, EngineConfig("v", URL, kind=kind)))
    expected: Values = dict(VLLM_032)
    del expected[(e.STEPS.name, ("v", QWEN3, "mixed"))]  # steps come from the plugin only
    expected.update(
        {
            (e.PREFIX_QUERIED.name, ("v", QWEN3)): 640_100.0,  # the plugin's, not the sum
            (e.RECOMPUTED_TOKENS.name, ("v", QWEN3)): 5_000.0,
            (e.STEPS.name, ("v", QWEN3, "prefill")): 2_000.0,
            (e.STEPS.name, ("v", QWEN3, "decode")): 50_000.0,
            (e.FLOPS.name, ("v", QWEN3)): 1e15,
            (e.KV_USAGE.name, ("v", QWEN3)): 0.7,
        }
    )
    assert scalars(found) == pytest.approx(expected)
    assert isinstance(found[(e.TTFT.name, ("v", QWEN3))], HistogramValue)  # vLLM's, kept


def test_kind_gpumetrics_reads_only_our_families() -> None:
    text = fixture("vllm_0_32.txt") + "\n".join(PLUGIN_LINES) + "\n"
    found = values(collection_from_text(text, EngineConfig("v", URL, kind="gpumetrics")))
    assert {name for name, _ in found} == {
        e.PREFIX_QUERIED.name,
        e.RECOMPUTED_TOKENS.name,
        e.STEPS.name,
        e.FLOPS.name,
        e.KV_USAGE.name,
        e.ENGINE_INFO.name,
    }
