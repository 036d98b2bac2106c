"""The vLLM plugin's recorder, driven by objects shaped like vLLM 0.32's stats (no vLLM here).

Oracles: counters are the sums of the fields fed in; FLOPs and bytes are
`costmodel.step_cost` over the explicit request lists the synthetic steps stand for.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gpumetrics.catalog import engine as cat
from gpumetrics.costmodel import RequestWork, from_hf_dict, step_cost
from gpumetrics.integrations.vllm_record import HooksSink, Recorder, make_recorder, settings
from gpumetrics.integrations.vllm_step import StepReader

REPO = Path(__file__).resolve().parents[2]
NS = SimpleNamespace  # vLLM stats, as plain attribute bags
HF = {
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "vocab_size": 455,
    "tie_word_embeddings": True,
    "max_position_embeddings": 2048,
}


class HfConfig:
    def to_dict(self) -> dict[str, object]:
        return dict(HF)


def vllm_config(**obs: Any) -> NS:
    return NS(
        model_config=NS(served_model_name="tiny", model="/m", dtype="torch.bfloat16",
                        hf_config=HfConfig()),
        cache_config=NS(num_gpu_blocks=24, block_size=128, cache_dtype="auto"),
        scheduler_config=NS(max_num_seqs=8, max_num_batched_tokens=2048),
        observability_config=NS(kv_cache_metrics=bool(obs), kv_cache_metrics_sample=0.5, **obs),
    )  # fmt: skip


def sched(
    *,
    running: int = 0,
    waiting: int = 0,
    queries: int = 0,
    hits: int = 0,
    preempted: tuple[int, int, int] = (0, 0, 0),
    details: tuple[int, int, float] | None = None,
    evictions: int = 0,
) -> NS:
    requests, pq, ph = preempted
    return NS(
        num_running_reqs=running, num_waiting_reqs=waiting, num_skipped_waiting_reqs=0,
        kv_cache_usage=0.25,
        prefix_cache_stats=NS(requests=1, queries=queries, hits=hits, preempted_requests=requests,
                              preempted_queries=pq, preempted_hits=ph),
        kv_cache_eviction_events=[NS(lifetime_seconds=1.0)] * evictions,
        spec_decoding_stats=None, connector_prefix_cache_stats=None,
        iteration_details=None if details is None else NS(
            num_ctx_tokens=details[0], num_generation_tokens=details[1],
            elapsed_ms=details[2], is_dummy=False),
    )  # fmt: skip


def iteration(
    *,
    prompt: int = 0,
    cached: int = 0,
    generated: int = 0,
    ttfts: tuple[float, ...] = (),
    itls: tuple[float, ...] = (),
    finished: tuple[tuple[int, int], ...] = (),
    preempted: int = 0,
) -> NS:
    return NS(
        num_generation_tokens=generated, num_preempted_reqs=preempted,
        prompt_token_stats=NS(total=prompt, cached_tokens=cached, computed=prompt - cached,
                              local_cache_hit=cached, external_kv_transfer=0),
        time_to_first_tokens_iter=list(ttfts), inter_token_latencies_iter=list(itls),
        finished_requests=[NS(e2e_latency=2.0, decode_time=1.5, num_prompt_tokens=p,
                              num_generation_tokens=g, num_cached_tokens=0, num_preemptions=0)
                           for p, g in finished],
    )  # fmt: skip


def recorder(registry: CollectorRegistry, rank: int = 0, **env: str) -> Recorder:
    return make_recorder(vllm_config(), rank, environ=env, registry=registry)


def value(registry: CollectorRegistry, spec: Any, rank: str = "0", **labels: str) -> float:
    name = spec.name if spec.type.value != "histogram" else spec.name + "_count"
    found = registry.get_sample_value(
        name, {"engine": labels.pop("engine", "vllm"), "model": "tiny", "dp_rank": rank, **labels}
    )
    assert found is not None, name
    return found


def test_two_requests_prefill_then_decode_match_the_cost_model() -> None:
    """A (100 prompt tokens, 32 cached) and B (100, none) prefill in one step, then decode
    three steps together, then both finish: the estimate is exact here (equal prompts, every
    live request decoding), so FLOPs and bytes equal step_cost over the explicit requests."""
    reg = CollectorRegistry()
    rec = recorder(reg)
    rec.record(sched(running=2, queries=200, hits=32),
               iteration(prompt=200, cached=32, generated=2, ttfts=(0.1, 0.2)))  # fmt: skip
    for _ in range(3):
        rec.record(sched(running=2), iteration(generated=2, itls=(0.01, 0.02)))
    rec.record(sched(), iteration(finished=((100, 4), (100, 4))))
    spec = from_hf_dict(HF)
    steps = [[RequestWork.prefill(100, 32), RequestWork.prefill(100)]] + [
        [RequestWork.decode(100 + j)] * 2 for j in (1, 2, 3)
    ]
    costs = [step_cost(spec, s) for s in steps]
    assert value(reg, cat.FLOPS) == pytest.approx(sum(c.flops for c in costs), rel=1e-12)
    assert value(reg, cat.READ_BYTES) == pytest.approx(sum(c.read_bytes for c in costs))
    assert value(reg, cat.WRITE_BYTES) == pytest.approx(sum(c.kv_write_bytes for c in costs))
    assert value(reg, cat.STEPS, phase="prefill") == 1
    assert value(reg, cat.STEPS, phase="decode") == 3
    assert value(reg, cat.STEP_TOKENS, phase="prefill") == 168
    assert value(reg, cat.STEP_TOKENS, phase="decode") == 6
    assert value(reg, cat.STEP_SEQUENCES) == 2 + 3 * 2
    assert value(reg, cat.PREFIX_QUERIED) == 200
    assert value(reg, cat.PREFIX_HIT) == 32
    assert value(reg, cat.PROMPT_TOKENS) == 200
    assert value(reg, cat.PROMPT_CACHED_TOKENS) == 32
    assert value(reg, cat.GENERATED_TOKENS) == 8
    assert value(reg, cat.FINISHED_REQUESTS) == 2
    assert value(reg, cat.TTFT) == 2
    assert value(reg, cat.ITL) == 6
    assert value(reg, cat.E2E) == 2
    assert value(reg, cat.KV_CAPACITY_BLOCKS) == 24
    assert value(reg, cat.KV_USED_BLOCKS) == 6  # 0.25 x 24
    assert value(reg, cat.MAX_BATCH_TOKENS) == 2048
    assert value(reg, cat.HOOK_ERRORS) == 0
    assert (rec.reader.live_requests, rec.reader.live_context) == (0, 0)


def test_iteration_details_give_exact_tokens_and_step_time() -> None:
    reg = CollectorRegistry()
    rec = recorder(reg)
    rec.record(sched(running=1, queries=64, details=(64, 0, 12.5)),
               iteration(prompt=64, generated=1, ttfts=(0.1,)))  # fmt: skip
    rec.record(sched(running=1, details=(0, 1, 2.5)), iteration(generated=1))
    assert value(reg, cat.STEP_TOKENS, phase="prefill") == 64
    assert value(reg, cat.STEP_TOKENS, phase="decode") == 1
    assert value(reg, cat.STEP_BUSY) == pytest.approx(0.015)
    assert value(reg, cat.STEP_DURATION) == 2


def test_recompute_after_preemption_and_preemptions() -> None:
    """A preempted request looked up again: 150 tokens, 48 hit -> 102 recomputed, their
    FLOPs those of prefilling 102 tokens over a 150-token context (no logits)."""
    reg = CollectorRegistry()
    rec = recorder(reg)
    rec.record(sched(), iteration(preempted=2))
    rec.record(sched(preempted=(1, 150, 48)), iteration())
    oracle = step_cost(
        from_hf_dict(HF), [RequestWork(new_tokens=102, context=150, samples=False)]
    ).flops
    assert value(reg, cat.PREEMPTIONS) == 2
    assert value(reg, cat.RECOMPUTED_TOKENS) == 102
    assert value(reg, cat.RECOMPUTED_FLOPS) == pytest.approx(oracle, rel=1e-12)
    assert value(reg, cat.PREFIX_QUERIED) == 0  # vLLM's counter leaves preempted lookups out
    assert value(reg, cat.STEP_TOKENS, phase="prefill") == 102


def test_attention_estimate_with_unequal_prompts_is_the_stated_mean() -> None:
    """Two prompts of 40 and 160 tokens prefilled in one step: Σ n·c is estimated as
    T x P/k = 200 x 200/2 = 20000 (exact: 40² + 160² = 27200); decoding next, each live
    request's context is estimated as the mean, 101 (exact: 41 and 161, same sum)."""
    reader = StepReader()
    first = reader.read(sched(), iteration(prompt=200, generated=2, ttfts=(0.1, 0.1)))
    assert first.token_context == 20000
    second = reader.read(sched(), iteration(generated=2))
    assert second.token_context == 2 * 101 == 41 + 161  # decode sums are exact
    one = StepReader().read(sched(), iteration(prompt=160, generated=1, ttfts=(0.1,)))
    assert one.token_context == 160 * 160  # one prefill per step: exact


def test_data_parallel_ranks_are_their_own_label(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    ranks = [recorder(reg, rank, GPUMETRICS_VLLM_ENGINE="pod-a") for rank in (0, 1)]
    ranks[0].record(sched(queries=10), iteration())
    ranks[1].record(sched(queries=30), iteration())
    assert value(reg, cat.PREFIX_QUERIED, "0", engine="pod-a") == 10
    assert value(reg, cat.PREFIX_QUERIED, "1", engine="pod-a") == 30


def test_missing_fields_degrade_count_and_log_once(caplog: pytest.LogCaptureFixture) -> None:
    reg = CollectorRegistry()
    rec = recorder(reg)
    old = NS(num_running_reqs=3, num_waiting_reqs=1, kv_cache_usage=0.5)  # no prefix stats
    with caplog.at_level(logging.WARNING, "gpumetrics.integrations.vllm"):
        rec.record(old, NS(num_generation_tokens=4))
        rec.record(old, NS(num_generation_tokens=4))
    assert value(reg, cat.HOOK_ERRORS) == 2
    assert value(reg, cat.RUNNING_SEQUENCES) == 3  # what is there still flows
    assert value(reg, cat.GENERATED_TOKENS) == 8
    warnings = [r for r in caplog.records if "gpumetrics vLLM plugin" in r.getMessage()]
    assert len(warnings) == 1
    assert "prefix_cache_stats" in warnings[0].getMessage()


def test_a_failing_stats_object_never_raises() -> None:
    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("boom")

    reg = CollectorRegistry()
    rec = recorder(reg)
    rec.record(Broken(), Broken())
    rec.record(sched(queries=5), iteration())
    assert value(reg, cat.HOOK_ERRORS) == 1
    assert value(reg, cat.PREFIX_QUERIED) == 5


def test_kv_eviction_events_are_scaled_by_the_sample_rate() -> None:
    reg = CollectorRegistry()
    rec = make_recorder(vllm_config(x=1), 0, environ={}, registry=reg)
    rec.record(sched(evictions=3), iteration())
    assert value(reg, cat.KV_EVICTED_BLOCKS) == 6  # 3 sampled at 0.5


def test_settings_read_vllm_config_and_reject_a_bad_endpoint() -> None:
    s = settings(vllm_config(), {"GPUMETRICS_VLLM_ENDPOINT": "127.0.0.1:9500"})
    assert (s.model, s.dtype, s.capacity, s.block_size, s.endpoint) == (
        "tiny", "bf16", 24, 128, ("127.0.0.1", 9500)
    )  # fmt: skip
    assert s.spec is not None
    assert s.spec.layers == 4
    with pytest.raises(ValueError, match="host:port"):
        settings(vllm_config(), {"GPUMETRICS_VLLM_ENDPOINT": "nope"})
    bare = settings(NS(model_config=NS(hf_config={"model_type": "x"})), {})
    assert (bare.spec, bare.capacity) == (None, None)  # no FLOPs, nothing raised


def test_hooks_endpoint_option_serves_the_families() -> None:
    rec = make_recorder(vllm_config(), 0, environ={"GPUMETRICS_VLLM_ENDPOINT": "127.0.0.1:0"})
    sink = rec.sink
    assert isinstance(sink, HooksSink)
    assert sink.endpoint is not None
    try:
        rec.record(sched(running=2, queries=200, hits=32),
                   iteration(prompt=200, cached=32, generated=2, ttfts=(0.1, 0.2)))  # fmt: skip
        rec.record(sched(), iteration(finished=((100, 1), (100, 1))))
        with urllib.request.urlopen(sink.endpoint.url, timeout=10) as r:
            page = r.read().decode()
    finally:
        sink.endpoint.close()
    labels = '{engine="vllm",model="tiny"}'
    assert f"{cat.PREFIX_QUERIED.name}{labels} 200" in page
    assert f"{cat.PREFIX_HIT.name}{labels} 32" in page
    assert f"{cat.FINISHED_REQUESTS.name}{labels} 2" in page
    assert f"{cat.KV_CAPACITY_BLOCKS.name}{labels} 24" in page


def test_multiprocess_mode_writes_what_the_collector_aggregates(tmp_path: Path) -> None:
    """Under PROMETHEUS_MULTIPROC_DIR (vLLM with several API servers) the families are
    prometheus_client's file-backed metrics: a MultiProcessCollector reads them back."""
    code = textwrap.dedent(
        """
        import sys
        sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests/integrations"]
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess
        from gpumetrics.integrations.vllm_record import make_recorder
        from test_vllm import iteration, sched, vllm_config
        make_recorder(vllm_config(), 0, environ={}).record(sched(queries=7, hits=3), iteration())
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        print(generate_latest(registry).decode())
        """
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    labels = 'dp_rank="0",engine="vllm",model="tiny"'
    assert f"{cat.PREFIX_QUERIED.name}{{{labels}}} 7.0" in out
    assert f"{cat.PREFIX_HIT.name}{{{labels}}} 3.0" in out
