"""Engine name maps: each fixture in tests/data/engines maps to hand-listed catalog samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumetrics.catalog import MetricSpec
from gpumetrics.catalog import engine as e
from gpumetrics.export.prometheus import render_text
from gpumetrics.samples import Collection, HistogramValue, Sample, Snapshot
from gpumetrics.sources.engine import EngineConfig, EngineError, collection_from_text
from gpumetrics.testing.sample_values import sample_values

DATA = Path(__file__).resolve().parent.parent / "data" / "engines"
URL = "http://127.0.0.1:9/metrics"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
QWEN = "Qwen/Qwen2.5-7B-Instruct"

Key = tuple[str, tuple[str, ...]]
Values = dict[Key, float | HistogramValue]


def fixture(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def values(collection: Collection) -> Values:
    """Samples by (metric, labels) (no duplicates); labels strings, values floats or
    histograms, whatever the engine's text held."""
    found = sample_values(collection)
    assert all(isinstance(label, str) for _, labels in found for label in labels)
    assert all(isinstance(value, float | HistogramValue) for value in found.values())
    return found


def scalars(found: Values) -> dict[Key, float]:
    return {k: v for k, v in found.items() if isinstance(v, float)}


def histogram(found: Values, key: Key) -> HistogramValue:
    value = found[key]
    assert isinstance(value, HistogramValue)
    return value


def mapped(
    file: str,
    name: str,
    *,
    kind: str = "auto",
    model: str | None = None,
    gpus: tuple[str, ...] = (),
) -> Values:
    config = EngineConfig(name, URL, kind=kind, model=model, gpus=gpus)
    collection = collection_from_text(fixture(file), config)
    assert collection.errors == ()
    return values(collection)


# --- vLLM V1 (current names, two data-parallel ranks) -------------------------------------

VLLM_TTFT_BOUNDS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
# engine="0" + engine="1", bucket by bucket
VLLM_TTFT_COUNTS = (
    0.0, 1.0, 10.0, 55.0, 183.0, 390.0, 630.0, 850.0, 1390.0, 1670.0, 1780.0,
    1835.0, 1885.0, 1900.0, 1903.0, 1905.0, 1905.0, 1905.0, 1905.0, 1905.0, 1905.0, 1905.0,
)  # fmt: skip


def test_vllm_v1_sums_data_parallel_ranks_and_scales_per_gpu_counters() -> None:
    found = mapped("vllm_v1.txt", name="llama-a", kind="vllm", gpus=("0", "1", "2", "3"))
    eng = ("llama-a", LLAMA)
    assert scalars(found) == pytest.approx(
        {
            (e.RUNNING_SEQUENCES.name, eng): 22.0,  # 12 + 10
            (e.WAITING_REQUESTS.name, eng): 4.0,
            (e.KV_USAGE.name, eng): 0.40,  # mean of 0.42 and 0.38
            (e.PREFIX_QUERIED.name, eng): 2_200_000.0,
            (e.PREFIX_HIT.name, eng): 980_000.0,
            (e.PREEMPTIONS.name, eng): 12.0,
            # prompt_tokens_recomputed_total (41 + 37: fully cached prompts' last token) is
            # not re-prefill after eviction: no RECOMPUTED_TOKENS from vLLM's page.
            (e.PROMPT_TOKENS.name, eng): 2_300_000.0,
            (e.PROMPT_CACHED_TOKENS.name, eng): 980_000.0,
            (e.GENERATED_TOKENS.name, eng): 600_000.0,
            (e.FINISHED_REQUESTS.name, eng): 1_905.0,  # all finished_reason values
            (e.STEPS.name, (*eng, "mixed")): 80_000.0,  # iteration_tokens_total_count
            (e.STEP_TOKENS.name, (*eng, "prefill")): 1_320_000.0,  # by_source local_compute
            (e.STEP_TOKENS.name, (*eng, "decode")): 600_000.0,
            (e.PROMPT_KV_TOKENS.name, (*eng, "computed")): 1_320_000.0,
            (e.PROMPT_KV_TOKENS.name, (*eng, "local_cache")): 980_078.0,  # 480041 + 500037
            (e.PROMPT_KV_TOKENS.name, (*eng, "external")): 0.0,
            (e.KV_BLOCK_SIZE.name, eng): 16.0,
            (e.KV_CAPACITY_BLOCKS.name, eng): 60_000.0,  # 30000 per rank
            # both ranks' cache_config_info have one layout: one series, one pool's blocks
            (e.CACHE_CONFIG_INFO.name, (*eng, "16", "30000", "auto")): 1.0,
            (e.FLOPS.name, eng): 1.2e16,  # (3.2e15 + 2.8e15) x 4 GPUs / 2 ranks
            (e.READ_BYTES.name, eng): 2.0e15,
            (e.WRITE_BYTES.name, eng): 7.6e12,
            (e.ENGINE_INFO.name, (*eng, "vllm")): 1.0,
            (e.ENGINE_GPU_INFO.name, (*eng, "0", "")): 1.0,
            (e.ENGINE_GPU_INFO.name, (*eng, "1", "")): 1.0,
            (e.ENGINE_GPU_INFO.name, (*eng, "2", "")): 1.0,
            (e.ENGINE_GPU_INFO.name, (*eng, "3", "")): 1.0,
        }
    )
    ttft = histogram(found, (e.TTFT.name, eng))
    assert ttft.bounds == VLLM_TTFT_BOUNDS  # the engine's own buckets, not the catalog's
    assert ttft.counts == VLLM_TTFT_COUNTS
    assert ttft.count == 1905.0
    assert ttft.sum == pytest.approx(578.15)
    itl = histogram(found, (e.ITL.name, eng))
    assert (len(itl.bounds), itl.count) == (19, 598_095.0)
    assert itl.sum == pytest.approx(17_942.85)
    e2e = histogram(found, (e.E2E.name, eng))
    assert (len(e2e.bounds), e2e.count) == (21, 1905.0)
    assert e2e.sum == pytest.approx(11_381.95)
    assert len(found) == 30


def test_vllm_per_gpu_counters_need_declared_gpus() -> None:
    found = mapped("vllm_v1.txt", name="llama-a")
    names = {metric for metric, _ in found}
    assert not names & {e.FLOPS.name, e.READ_BYTES.name, e.WRITE_BYTES.name, e.ENGINE_GPU_INFO.name}
    assert (e.PROMPT_TOKENS.name, ("llama-a", LLAMA)) in found


# --- vLLM, older names --------------------------------------------------------------------


def test_vllm_old_names_map_and_the_hit_rate_gauge_is_ignored() -> None:
    found = mapped("vllm_old.txt", name="qwen")
    eng = ("qwen", QWEN)
    assert scalars(found) == pytest.approx(
        {
            (e.RUNNING_SEQUENCES.name, eng): 5.0,
            (e.WAITING_REQUESTS.name, eng): 0.0,
            (e.KV_USAGE.name, eng): 0.61,  # vllm:gpu_cache_usage_perc
            (e.PREFIX_QUERIED.name, eng): 50_000.0,  # vllm:gpu_prefix_cache_queries_total
            (e.PREFIX_HIT.name, eng): 20_000.0,  # vllm:gpu_prefix_cache_hits_total
            (e.PREEMPTIONS.name, eng): 1.0,
            (e.PROMPT_TOKENS.name, eng): 80_000.0,
            (e.GENERATED_TOKENS.name, eng): 20_000.0,
            (e.FINISHED_REQUESTS.name, eng): 100.0,
            (e.STEPS.name, (*eng, "mixed")): 3_000.0,
            (e.STEP_TOKENS.name, (*eng, "prefill")): 80_000.0,  # no by_source: prompt_tokens
            (e.STEP_TOKENS.name, (*eng, "decode")): 20_000.0,
            (e.KV_BLOCK_SIZE.name, eng): 16.0,
            (e.KV_CAPACITY_BLOCKS.name, eng): 8_000.0,
            (e.CACHE_CONFIG_INFO.name, (*eng, "16", "8000", "auto")): 1.0,
            (e.ENGINE_INFO.name, (*eng, "vllm")): 1.0,
        }
    )
    itl = histogram(found, (e.ITL.name, eng))  # from vllm:time_per_output_token_seconds
    assert itl.bounds == (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
    assert itl.counts[:6] == (5000.0, 15000.0, 19000.0, 19700.0, 19850.0, 19900.0)
    assert (itl.count, itl.sum) == (19_900.0, 512.75)
    assert histogram(found, (e.TTFT.name, eng)).count == 100.0
    assert histogram(found, (e.E2E.name, eng)).sum == 380.0
    assert len(found) == 19


# --- SGLang ---------------------------------------------------------------------------------

SGLANG_TTFT_BOUNDS = (
    0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0,
    100.0, 200.0, 400.0,
)  # fmt: skip
GPU_A = "GPU-5d3c2a5e-8f1b-4c7e-9a3d-0b1c2d3e4f50"
GPU_B = "GPU-6e4d3b6f-9a2c-4d8f-8b4e-1c2d3e4f5061"


def test_sglang_realtime_tokens_feed_the_prefix_cache_and_tp_replicas_count_once() -> None:
    found = mapped("sglang.txt", name="sgl", gpus=(GPU_A, GPU_B))
    eng = ("sgl", LLAMA)
    assert scalars(found) == pytest.approx(
        {
            (e.RUNNING_SEQUENCES.name, eng): 24.0,  # tp_rank 0 and 1 repeat one scheduler
            (e.WAITING_REQUESTS.name, eng): 6.0,
            (e.KV_USAGE.name, eng): 0.55,
            (e.KV_USED_BLOCKS.name, eng): 275_000.0,  # num_used_tokens / page_size 1
            (e.PREFIX_QUERIED.name, eng): 2_900_000.0,  # prefill_compute + prefill_cache
            (e.PREFIX_HIT.name, eng): 900_000.0,  # prefill_cache
            (e.STEP_TOKENS.name, (*eng, "prefill")): 2_000_000.0,
            (e.STEP_TOKENS.name, (*eng, "decode")): 1_500_000.0,
            (e.PROMPT_KV_TOKENS.name, (*eng, "computed")): 2_000_000.0,
            (e.PROMPT_KV_TOKENS.name, (*eng, "local_cache")): 900_000.0,
            (e.STEP_BUSY.name, eng): 1_500.75,  # gpu_execution_seconds_total, both categories
            (e.PREEMPTIONS.name, eng): 4.0,
            (e.PROMPT_TOKENS.name, eng): 2_900_000.0,
            (e.PROMPT_CACHED_TOKENS.name, eng): 900_000.0,
            (e.GENERATED_TOKENS.name, eng): 1_480_000.0,
            (e.FINISHED_REQUESTS.name, eng): 2_100.0,
            (e.KV_BLOCK_SIZE.name, eng): 1.0,
            (e.KV_CAPACITY_BLOCKS.name, eng): 500_000.0,
            # page_size -> block_size, num_pages -> num_gpu_blocks; tp_rank 1 repeats rank 0
            (e.CACHE_CONFIG_INFO.name, (*eng, "1", "500000", "")): 1.0,
            (e.ENGINE_INFO.name, (*eng, "sglang")): 1.0,
            (e.ENGINE_GPU_INFO.name, (*eng, "", GPU_A)): 1.0,
            (e.ENGINE_GPU_INFO.name, (*eng, "", GPU_B)): 1.0,
        }
    )
    ttft = histogram(found, (e.TTFT.name, eng))
    assert ttft.bounds == SGLANG_TTFT_BOUNDS
    assert ttft.counts[:4] == (300.0, 700.0, 1300.0, 1650.0)
    assert (ttft.count, ttft.sum) == (2100.0, 1260.5)
    assert histogram(found, (e.ITL.name, eng)).count == 1_477_900.0
    assert histogram(found, (e.E2E.name, eng)).sum == 25_200.0
    assert len(found) == 25


def test_sglang_data_parallel_ranks_add_up() -> None:
    lines = [
        "# TYPE sglang:num_running_reqs gauge",
        *(
            f'sglang:num_running_reqs{{dp_rank="{dp}",model_name="m",pp_rank="0",'
            f'tp_rank="{tp}"}} {running}'
            for dp, tp, running in (("0", "0", 5), ("0", "1", 5), ("1", "2", 7), ("1", "3", 7))
        ),
        "# TYPE sglang:token_usage gauge",
        'sglang:token_usage{dp_rank="0",model_name="m",tp_rank="0"} 0.2',
        'sglang:token_usage{dp_rank="1",model_name="m",tp_rank="2"} 0.4',
    ]
    found = values(collection_from_text("\n".join(lines) + "\n", EngineConfig("s", URL)))
    assert found[(e.RUNNING_SEQUENCES.name, ("s", "m"))] == 12.0  # 5 + 7, replicas once
    assert found[(e.KV_USAGE.name, ("s", "m"))] == pytest.approx(0.3)


# --- TensorRT-LLM on Triton -----------------------------------------------------------------


def test_trtllm_on_triton_with_a_configured_model_and_gpu_pairs() -> None:
    found = mapped(
        "trtllm_triton.txt",
        name="trt",
        model="llama-3-70b",
        gpus=(f"0:{GPU_A}", f"1:{GPU_B}"),
    )
    eng = ("trt", "llama-3-70b")  # the configured model wins over Triton's model="tensorrt_llm"
    assert found == {
        (e.RUNNING_SEQUENCES.name, eng): 6.0,  # request_type="scheduled"
        (e.WAITING_REQUESTS.name, eng): 3.0,
        (e.MAX_BATCH_SEQUENCES.name, eng): 512.0,
        (e.KV_CAPACITY_BLOCKS.name, eng): 6239.0,
        (e.KV_USED_BLOCKS.name, eng): 1500.0,
        (e.KV_BLOCK_SIZE.name, eng): 64.0,
        (e.KV_USAGE.name, eng): 0.2404,
        (e.STEPS.name, (*eng, "mixed")): 123_456.0,
        (e.ENGINE_INFO.name, (*eng, "trtllm")): 1.0,
        (e.ENGINE_GPU_INFO.name, (*eng, "0", GPU_A)): 1.0,
        (e.ENGINE_GPU_INFO.name, (*eng, "1", GPU_B)): 1.0,
    }


def test_trtllm_without_fraction_derives_usage_from_blocks_and_uses_tritons_model() -> None:
    text = "".join(
        line + "\n" for line in fixture("trtllm_triton.txt").splitlines() if "fraction" not in line
    )
    found = values(collection_from_text(text, EngineConfig("trt", URL, kind="trtllm")))
    eng = ("trt", "tensorrt_llm")
    assert found[(e.KV_USAGE.name, eng)] == pytest.approx(1500 / 6239)
    assert found[(e.ENGINE_INFO.name, (*eng, "trtllm"))] == 1.0


# --- gpumetrics hooks (identity map) --------------------------------------------------------

HOOKS_MODEL = "llama-3.1-8b"


def hook_samples(engine: str) -> list[Sample]:
    """What tests/data/engines/gpumetrics_hooks.txt holds (rendered from these, engine
    "worker-0"): one sample of every engine family but engine and GPU info."""
    m = (engine, HOOKS_MODEL)

    def hist(spec: MetricSpec, counts: tuple[float, ...], total: float, count: float) -> Sample:
        return spec.sample(HistogramValue(spec.buckets, counts, total, count), *m)

    return [
        e.KV_USAGE.sample(0.5, *m),
        e.KV_CAPACITY_BLOCKS.sample(4096.0, *m),
        e.KV_USED_BLOCKS.sample(2048.0, *m),
        e.KV_EVICTABLE_BLOCKS.sample(512.0, *m),
        e.KV_BLOCK_SIZE.sample(16.0, *m),
        e.PREFIX_QUERIED.sample(1_000_000.0, *m),
        e.PREFIX_HIT.sample(400_000.0, *m),
        e.KV_EVICTED_BLOCKS.sample(1_500.0, *m),
        e.RECOMPUTED_TOKENS.sample(24_000.0, *m),
        e.RECOMPUTED_FLOPS.sample(3.5e14, *m),
        e.PREEMPTIONS.sample(3.0, *m),
        e.RUNNING_SEQUENCES.sample(32.0, *m),
        e.WAITING_REQUESTS.sample(5.0, *m),
        e.MAX_BATCH_SEQUENCES.sample(256.0, *m),
        e.MAX_BATCH_TOKENS.sample(8192.0, *m),
        e.STEPS.sample(1_200.0, *m, "prefill"),
        e.STEPS.sample(50_000.0, *m, "decode"),
        e.STEPS.sample(300.0, *m, "mixed"),
        e.STEP_SEQUENCES.sample(1_400_000.0, *m),
        e.STEP_TOKENS.sample(600_000.0, *m, "prefill"),
        e.STEP_TOKENS.sample(1_400_000.0, *m, "decode"),
        e.STEP_BUSY.sample(812.5, *m),
        hist(
            e.STEP_DURATION,
            (0.0, 10.0, 2_000.0, 30_000.0, 49_000.0, 50_900.0, 51_400.0, 51_500.0)
            + (51_500.0,) * 3,
            1_050.25,
            51_500.0,
        ),
        e.FLOPS.sample(4.2e17, *m),
        e.READ_BYTES.sample(9.6e15, *m),
        e.WRITE_BYTES.sample(1.2e13, *m),
        e.PROMPT_TOKENS.sample(1_000_000.0, *m),
        e.PROMPT_CACHED_TOKENS.sample(400_000.0, *m),
        e.GENERATED_TOKENS.sample(1_450_000.0, *m),
        e.FINISHED_REQUESTS.sample(4_000.0, *m),
        e.HOOK_ERRORS.sample(2.0, *m),
        e.KV_EVICTED_TOKENS.sample(24_000.0, *m),
        e.KV_LOADED_TOKENS.sample(8_000.0, *m),
        e.EXTERNAL_PREFIX_QUERIED.sample(600_000.0, *m),
        e.EXTERNAL_PREFIX_HIT.sample(150_000.0, *m),
        e.PREEMPTED_TOKENS.sample(30_000.0, *m),
        hist(e.KV_BLOCK_LIFETIME, (0.0,) * 10 + (5.0, 20.0, 60.0) + (75.0,) * 8, 800.0, 75.0),
        hist(e.KV_BLOCK_IDLE, (0.0,) * 8 + (10.0, 40.0, 70.0) + (75.0,) * 10, 90.0, 75.0),
        hist(e.KV_BLOCK_REUSE_GAP, (0.0,) * 6 + (30.0, 90.0, 120.0) + (130.0,) * 12, 40.0, 130.0),
        e.WAITING_BY_REASON.sample(4.0, *m, "capacity"),
        e.WAITING_BY_REASON.sample(1.0, *m, "deferred"),
        e.SLEEP_STATE.sample(1.0, *m, "awake"),
        e.PROMPT_KV_TOKENS.sample(600_000.0, *m, "computed"),
        e.PROMPT_KV_TOKENS.sample(400_000.0, *m, "local_cache"),
        hist(
            e.REQUEST_PREFILL_COMPUTED,
            (0.0,) * 5 + (100.0, 400.0, 1_500.0, 3_000.0, 3_800.0) + (4_000.0,) * 9,
            600_000.0,
            4_000.0,
        ),
        e.SPEC_DRAFTS.sample(10_000.0, *m),
        e.SPEC_DRAFT_TOKENS.sample(30_000.0, *m),
        e.SPEC_ACCEPTED_TOKENS.sample(18_000.0, *m),
        e.SPEC_POSITION_ACCEPTED.sample(8_000.0, *m, "0"),
        e.SPEC_POSITION_ACCEPTED.sample(6_000.0, *m, "1"),
        e.SPEC_POSITION_ACCEPTED.sample(4_000.0, *m, "2"),
        e.KV_PREDICTED_HIT_RATIO.sample(0.31, *m, "0.5"),
        e.KV_PREDICTED_HIT_RATIO.sample(0.47, *m, "2"),
        e.KV_PREDICTED_HIT_RATIO.sample(0.52, *m, "4"),
        hist(
            e.TTFT,
            (0.0, 2.0, 40.0, 300.0, 1_200.0, 2_900.0, 3_600.0, 3_900.0, 3_980.0, 3_998.0)
            + (4_000.0,) * 4,
            1_330.5,
            4_000.0,
        ),
        hist(
            e.ITL,
            (10.0, 500.0, 60_000.0, 900_000.0, 1_300_000.0, 1_420_000.0, 1_440_000.0)
            + (1_444_000.0, 1_445_500.0, 1_446_000.0)
            + (1_446_000.0,) * 3,
            15_905.0,
            1_446_000.0,
        ),
        hist(
            e.E2E,
            (0.0, 0.0, 10.0, 100.0, 900.0, 2_500.0, 3_600.0, 3_950.0, 3_995.0, 4_000.0)
            + (4_000.0,) * 2,
            17_480.0,
            4_000.0,
        ),
        e.LORA_ADAPTERS_INFO.sample(1_764_800_000.0, *m, "4", "sql-lora,chat-lora", "tool-lora"),
        e.CACHE_CONFIG_INFO.sample(1.0, *m, "16", "4096", "auto"),
    ]


def test_hook_samples_cover_every_engine_family() -> None:
    covered = {sample.metric for sample in hook_samples("x")}
    # Engine and GPU info are the sidecar's own; the gateway's info families are relayed.
    info = {e.ENGINE_INFO.name, e.ENGINE_GPU_INFO.name}
    assert covered == {spec.name for spec in e.ALL} - info


def test_gpumetrics_hooks_fixture_maps_one_to_one_with_the_configured_engine_name() -> None:
    found = mapped("gpumetrics_hooks.txt", name="hooks-a", gpus=("3",))
    expected: Values = {(s.metric, s.labels): s.value for s in hook_samples("hooks-a")}
    expected[(e.ENGINE_INFO.name, ("hooks-a", HOOKS_MODEL, "gpumetrics"))] = 1.0
    expected[(e.ENGINE_GPU_INFO.name, ("hooks-a", HOOKS_MODEL, "3", ""))] = 1.0
    assert found == expected


def test_hooks_exposition_round_trips_through_the_exporter() -> None:
    snapshot = Snapshot(0.0, tuple(hook_samples("someone-else")))
    text = render_text(snapshot).decode()
    found = values(collection_from_text(text, EngineConfig("rt", URL)))
    for sample in hook_samples("rt"):
        assert found[(sample.metric, sample.labels)] == sample.value


# --- auto-detection, model labels, degrading ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("vllm_v1.txt", "vllm"),
        ("vllm_old.txt", "vllm"),
        ("sglang.txt", "sglang"),
        ("trtllm_triton.txt", "trtllm"),
        ("gpumetrics_hooks.txt", "gpumetrics"),
    ],
)
def test_auto_detects_the_kind_from_name_prefixes(name: str, kind: str) -> None:
    found = values(collection_from_text(fixture(name), EngineConfig("x", URL)))
    assert {labels[2] for metric, labels in found if metric == e.ENGINE_INFO.name} == {kind}


def test_a_page_with_an_engines_names_and_ours_is_that_engine() -> None:
    text = fixture("vllm_old.txt") + fixture("gpumetrics_hooks.txt")
    found = values(collection_from_text(text, EngineConfig("x", URL)))
    # The hooks carry every family, so every family comes from them (see test_engine_truth.py
    # for a page where vLLM keeps the families ours lack).
    expected: Values = {(s.metric, s.labels): s.value for s in hook_samples("x")}
    expected[(e.ENGINE_INFO.name, ("x", HOOKS_MODEL, "vllm"))] = 1.0
    assert found == expected


def test_auto_on_an_unknown_exposition_raises_unknown_kind() -> None:
    text = "# TYPE node_load1 gauge\nnode_load1 0.5\n"
    with pytest.raises(EngineError) as caught:
        collection_from_text(text, EngineConfig("x", URL))
    assert caught.value.code == "unknown_kind"


def test_a_fixed_kind_on_foreign_text_yields_only_the_info_series() -> None:
    found = values(collection_from_text(fixture("sglang.txt"), EngineConfig("x", URL, kind="vllm")))
    assert found == {(e.ENGINE_INFO.name, ("x", "", "vllm")): 1.0}


def test_the_engines_model_label_wins_and_unlabelled_series_follow_it() -> None:
    config = EngineConfig("a", URL, model="configured-name")
    found = values(collection_from_text(fixture("vllm_old.txt"), config))
    assert {labels[1] for _, labels in found} == {QWEN}  # cache_config_info has no model_name


def test_the_configured_model_labels_series_without_one() -> None:
    text = "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 3\n"
    found = values(collection_from_text(text, EngineConfig("a", URL, model="my-model")))
    assert found[(e.RUNNING_SEQUENCES.name, ("a", "my-model"))] == 3.0


def test_histograms_with_different_buckets_merge_on_the_shared_bounds() -> None:
    lines = ["# TYPE vllm:e2e_request_latency_seconds histogram"]
    for rank, series in (("0", ((1, 2), (5, 6), (10, 9))), ("1", ((1, 1), (2, 3), (10, 4)))):
        labels = f'engine="{rank}",model_name="m"'
        lines += [
            f'vllm:e2e_request_latency_seconds_bucket{{{labels},le="{b}"}} {c}' for b, c in series
        ]
        total = series[-1][1] + 1
        lines += [
            f'vllm:e2e_request_latency_seconds_bucket{{{labels},le="+Inf"}} {total}',
            f"vllm:e2e_request_latency_seconds_count{{{labels}}} {total}",
            f"vllm:e2e_request_latency_seconds_sum{{{labels}}} 50.5",
        ]
    found = values(collection_from_text("\n".join(lines) + "\n", EngineConfig("a", URL)))
    assert found[(e.E2E.name, ("a", "m"))] == HistogramValue((1.0, 10.0), (3.0, 13.0), 101.0, 15.0)


def test_an_inconsistent_histogram_is_skipped_with_a_partial_error() -> None:
    text = (
        "# TYPE vllm:time_to_first_token_seconds histogram\n"
        'vllm:time_to_first_token_seconds_bucket{model_name="m",le="0.1"} 5\n'
        'vllm:time_to_first_token_seconds_bucket{model_name="m",le="1.0"} 3\n'
        'vllm:time_to_first_token_seconds_bucket{model_name="m",le="+Inf"} 5\n'
        'vllm:time_to_first_token_seconds_sum{model_name="m"} 1.5\n'
        'vllm:num_requests_running{model_name="m"} 2\n'
    )
    collection = collection_from_text(text, EngineConfig("a", URL))
    assert collection.errors == ("invalid_series",)
    found = values(collection)
    assert found[(e.RUNNING_SEQUENCES.name, ("a", "m"))] == 2.0
    assert (e.TTFT.name, ("a", "m")) not in found


def test_nan_values_and_unsized_cache_config_are_absent_not_errors() -> None:
    text = (
        'vllm:kv_cache_usage_perc{model_name="m"} NaN\n'
        'vllm:num_requests_waiting{model_name="m"} +Inf\n'
        'vllm:cache_config_info{block_size="16",num_gpu_blocks="None"} 1.0\n'
    )
    collection = collection_from_text(text, EngineConfig("a", URL))
    assert collection.errors == ()
    assert values(collection) == {
        (e.KV_BLOCK_SIZE.name, ("a", "m")): 16.0,
        (e.ENGINE_INFO.name, ("a", "m", "vllm")): 1.0,
    }


@pytest.mark.parametrize(
    "text",
    [
        'vllm:num_requests_running{model_name="m"} 3',  # no final newline: cut short
        'vllm:num_requests_running{model_name="m\n',
        "vllm:num_requests_running{model_name=m} 3\n",
        "vllm:num_requests_running three\n",
        "\x00\x01garbage{{{\n",
    ],
)
def test_garbage_and_truncated_text_raise_parse(text: str) -> None:
    with pytest.raises(EngineError) as caught:
        collection_from_text(text, EngineConfig("a", URL, kind="vllm"))
    assert caught.value.code == "parse"


def test_samples_are_in_the_catalog_with_its_label_arity() -> None:
    for name in ("vllm_v1.txt", "vllm_old.txt", "sglang.txt", "trtllm_triton.txt"):
        collection = collection_from_text(fixture(name), EngineConfig("x", URL, gpus=("0",)))
        specs = {spec.name: spec for spec in e.ALL}
        for sample in collection.samples:
            assert len(sample.labels) == len(specs[sample.metric].labels)
