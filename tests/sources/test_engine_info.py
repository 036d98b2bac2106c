"""Gateway info families through the bridge (sources/engine/info.py), hand-listed."""

from __future__ import annotations

from gpumetrics.catalog import engine as e
from gpumetrics.sources.engine import EngineConfig, collection_from_text
from gpumetrics.testing.sample_values import sample_values

URL = "http://127.0.0.1:9/metrics"


def infos(text: str, kind: str = "auto") -> dict[tuple[str, tuple[str, ...]], object]:
    collection = collection_from_text(text, EngineConfig("a", URL, kind=kind))
    assert collection.errors == ()
    gateway = {e.CACHE_CONFIG_INFO.name, e.LORA_ADAPTERS_INFO.name}
    return {k: v for k, v in sample_values(collection).items() if k[0] in gateway}


def test_vllm_ranks_with_different_layouts_stay_apart_and_unsized_ones_are_skipped() -> None:
    text = (
        'vllm:num_requests_running{engine="0",model_name="m"} 1\n'
        'vllm:cache_config_info{block_size="16",cache_dtype="fp8",engine="0",'
        'num_gpu_blocks="1000"} 1\n'
        'vllm:cache_config_info{block_size="16",cache_dtype="fp8",engine="1",'
        'num_gpu_blocks="1000"} 1\n'
        'vllm:cache_config_info{block_size="16",cache_dtype="fp8",engine="2",'
        'num_gpu_blocks="1200"} 1\n'
        'vllm:cache_config_info{block_size="16",cache_dtype="fp8",engine="3",'
        'num_gpu_blocks="None"} 1\n'
    )
    assert infos(text) == {
        (e.CACHE_CONFIG_INFO.name, ("a", "m", "16", "1000", "fp8")): 1.0,  # ranks 0 and 1
        (e.CACHE_CONFIG_INFO.name, ("a", "m", "16", "1200", "fp8")): 1.0,
    }


def test_equal_lora_label_sets_keep_the_latest_time() -> None:
    text = (
        'gpumetrics_engine_lora_adapters_info{dp_rank="0",engine="w",max_lora="2",model="m",'
        'running_lora_adapters="x",waiting_lora_adapters=""} 1700000000\n'
        'gpumetrics_engine_lora_adapters_info{dp_rank="1",engine="w",max_lora="2",model="m",'
        'running_lora_adapters="x",waiting_lora_adapters=""} 1700000030\n'
        'gpumetrics_engine_cache_config_info{block_size="32",cache_dtype="auto",engine="w",'
        'model="m",num_gpu_blocks="512"} 1\n'
    )
    assert infos(text) == {
        (e.LORA_ADAPTERS_INFO.name, ("a", "m", "2", "x", "")): 1_700_000_030.0,  # not the sum
        (e.CACHE_CONFIG_INFO.name, ("a", "m", "32", "512", "auto")): 1.0,
    }


def test_our_cache_config_info_wins_over_vllms() -> None:
    text = (
        'vllm:cache_config_info{block_size="16",cache_dtype="auto",engine="0",'
        'num_gpu_blocks="1000"} 1\n'
        'gpumetrics_engine_cache_config_info{block_size="16",cache_dtype="bf16",engine="w",'
        'model="m",num_gpu_blocks="999"} 1\n'
    )
    assert infos(text) == {(e.CACHE_CONFIG_INFO.name, ("a", "m", "16", "999", "bf16")): 1.0}


def test_sglang_info_series_wins_over_its_gauges_and_gauges_need_both() -> None:
    labels = 'model_name="m",tp_rank="0"'
    gauges = f"sglang:page_size{{{labels}}} 64\nsglang:num_pages{{{labels}}} 2048\n"
    info = 'sglang:cache_config_info{model_name="m",page_size="64",num_pages="2000"} 1\n'
    assert infos(gauges + info) == {(e.CACHE_CONFIG_INFO.name, ("a", "m", "64", "2000", "")): 1.0}
    assert infos(gauges) == {(e.CACHE_CONFIG_INFO.name, ("a", "m", "64", "2048", "")): 1.0}
    assert infos(f"sglang:num_pages{{{labels}}} 2048\n") == {}
