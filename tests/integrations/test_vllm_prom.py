"""The plugin's registry sink (`vllm_prom.PromSink`): the families added after the first
plugin (prompt KV tokens by origin, external prefix cache, speculative decoding), every series
present from the start, and the direct value updates that make a step cheap.

Oracles: hand sums of the synthetic vLLM 0.32-shaped stats fed in (see test_vllm.py); a
Counter/Histogram updated through prometheus_client's public calls.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from gpumetrics.catalog import engine as cat
from gpumetrics.integrations.vllm_prom import incrementer, observe_many
from gpumetrics.integrations.vllm_record import HooksSink, make_recorder, settings
from gpumetrics.integrations.vllm_step import StepReader

from .test_vllm import NS, REPO, iteration, sched, value, vllm_config


def spec_config(positions: int) -> NS:
    config = vllm_config()
    config.speculative_config = NS(num_speculative_tokens=positions)
    return config


def spec_stats(drafts: int, draft_tokens: int, per_position: list[int]) -> NS:
    return NS(num_spec_tokens=len(per_position), num_drafts=drafts,
              num_draft_tokens=draft_tokens, num_accepted_tokens=sum(per_position),
              num_accepted_tokens_per_pos=per_position,
              num_draft_tokens_per_pos=[drafts] * len(per_position))  # fmt: skip


def by_origin(
    computed: int, local: int, external: int, *, generated: int = 0, ttfts: int = 0
) -> NS:
    it = iteration(prompt=computed + local + external, cached=local + external,
                   generated=generated, ttfts=(0.1,) * ttfts)  # fmt: skip
    it.prompt_token_stats = NS(total=computed + local + external, cached_tokens=local + external,
                               computed=computed, local_cache_hit=local,
                               external_kv_transfer=external)  # fmt: skip
    return it


def test_every_new_series_exists_at_zero_before_the_first_step() -> None:
    """The bridge takes a family from the plugin once any of its series is on the page, so
    each must be there (at 0) before vLLM has run a step."""
    reg = CollectorRegistry()
    make_recorder(spec_config(3), 0, environ={}, registry=reg)
    for origin in ("computed", "local_cache", "external"):
        assert value(reg, cat.PROMPT_KV_TOKENS, origin=origin) == 0
    for spec in (cat.EXTERNAL_PREFIX_QUERIED, cat.EXTERNAL_PREFIX_HIT, cat.SPEC_DRAFTS,
                 cat.SPEC_DRAFT_TOKENS, cat.SPEC_ACCEPTED_TOKENS, cat.PREFIX_QUERIED,
                 cat.STEP_BUSY, cat.FLOPS):  # fmt: skip
        assert value(reg, spec) == 0
    for position in ("0", "1", "2"):
        assert value(reg, cat.SPEC_POSITION_ACCEPTED, position=position) == 0
    labels = {"engine": "vllm", "model": "tiny", "dp_rank": "0", "position": "3"}
    assert reg.get_sample_value(cat.SPEC_POSITION_ACCEPTED.name, labels) is None


def test_prompt_tokens_by_origin_and_external_prefix_cache_add_up() -> None:
    """Step 1: 60 computed + 32 local hits + 8 external; the connector looked up 50 tokens,
    8 found. Step 2: 10 computed + 90 local; connector 100 looked up, 0 found. Step 3: no
    connector stats (None) and no prompt: nothing moves."""
    reg = CollectorRegistry()
    rec = make_recorder(vllm_config(), 0, environ={}, registry=reg)
    first = sched(queries=100, hits=32)
    first.connector_prefix_cache_stats = NS(requests=1, queries=50, hits=8)
    rec.record(first, by_origin(60, 32, 8, generated=1, ttfts=1))
    second = sched(queries=100, hits=90)
    second.connector_prefix_cache_stats = NS(requests=1, queries=100, hits=0)
    rec.record(second, by_origin(10, 90, 0, generated=1, ttfts=1))
    rec.record(sched(), iteration(generated=2))
    assert value(reg, cat.PROMPT_KV_TOKENS, origin="computed") == 70
    assert value(reg, cat.PROMPT_KV_TOKENS, origin="local_cache") == 122
    assert value(reg, cat.PROMPT_KV_TOKENS, origin="external") == 8
    assert value(reg, cat.PROMPT_TOKENS) == 200
    assert value(reg, cat.PROMPT_CACHED_TOKENS) == 130
    assert value(reg, cat.EXTERNAL_PREFIX_QUERIED) == 150
    assert value(reg, cat.EXTERNAL_PREFIX_HIT) == 8
    assert value(reg, cat.HOOK_ERRORS) == 0


def test_speculative_decoding_counts_and_positions() -> None:
    """Two steps of 3-token drafts: 4 drafts (12 tokens) accepting [4, 2, 1] per position,
    then 2 drafts (6 tokens) accepting [1, 0, 0]; a step without spec stats moves nothing."""
    reg = CollectorRegistry()
    rec = make_recorder(spec_config(3), 0, environ={}, registry=reg)
    for drafts, per_position in ((4, [4, 2, 1]), (2, [1, 0, 0])):
        step = sched(running=drafts)
        step.spec_decoding_stats = spec_stats(drafts, 3 * drafts, per_position)
        rec.record(step, iteration(generated=drafts))
    rec.record(sched(running=2), iteration(generated=2))
    assert value(reg, cat.SPEC_DRAFTS) == 6
    assert value(reg, cat.SPEC_DRAFT_TOKENS) == 18
    assert value(reg, cat.SPEC_ACCEPTED_TOKENS) == 8
    got = [value(reg, cat.SPEC_POSITION_ACCEPTED, position=str(p)) for p in range(3)]
    assert got == [5, 2, 1]
    assert value(reg, cat.HOOK_ERRORS) == 0


def test_a_bad_position_list_is_counted_and_the_rest_still_flows() -> None:
    reg = CollectorRegistry()
    rec = make_recorder(spec_config(2), 0, environ={}, registry=reg)
    step = sched(running=1)
    step.spec_decoding_stats = spec_stats(1, 2, [1, -1])
    rec.record(step, iteration(generated=1))
    assert value(reg, cat.HOOK_ERRORS) == 1
    assert value(reg, cat.SPEC_DRAFTS) == 1
    assert value(reg, cat.SPEC_DRAFT_TOKENS) == 2
    assert value(reg, cat.SPEC_POSITION_ACCEPTED, position="0") == 0


def test_older_vllm_without_the_origin_fields_degrades() -> None:
    """A PromptTokenStats without local_cache_hit/external_kv_transfer: counted as missing,
    the prompt totals and the computed origin still flow."""
    reg = CollectorRegistry()
    rec = make_recorder(vllm_config(), 0, environ={}, registry=reg)
    it = iteration(prompt=100, cached=40, generated=1, ttfts=(0.1,))
    it.prompt_token_stats = NS(total=100, cached_tokens=40, computed=60)
    rec.record(sched(queries=100, hits=40), it)
    assert value(reg, cat.HOOK_ERRORS) == 1
    assert value(reg, cat.PROMPT_TOKENS) == 100
    assert value(reg, cat.PROMPT_KV_TOKENS, origin="computed") == 60
    assert value(reg, cat.PROMPT_KV_TOKENS, origin="local_cache") == 0


def test_gauges_follow_changes_and_skipping_unchanged_sets_loses_nothing() -> None:
    reg = CollectorRegistry()
    rec = make_recorder(vllm_config(), 0, environ={}, registry=reg)
    for running in (5, 5, 3, 3, 5):
        rec.record(sched(running=running, waiting=running - 1), iteration())
        assert value(reg, cat.RUNNING_SEQUENCES) == running
        assert value(reg, cat.WAITING_REQUESTS) == running - 1
    assert value(reg, cat.KV_USED_BLOCKS) == 6  # 0.25 x 24


def test_direct_updates_equal_prometheus_clients_own_calls() -> None:
    """`incrementer` and `observe_many` against Counter.inc / Histogram.observe."""
    reg = CollectorRegistry()
    ours, theirs = Counter("a", "a", registry=reg), Counter("b", "b", registry=reg)
    add = incrementer(ours)
    for amount in (1, 2.5, 0, 7):
        add(amount)
        theirs.inc(amount)
    assert reg.get_sample_value("a_total") == reg.get_sample_value("b_total") == 10.5
    bounds = (0.01, 0.1, 1.0)
    h1 = Histogram("h1", "h", registry=reg, buckets=bounds)
    h2 = Histogram("h2", "h", registry=reg, buckets=bounds)
    values = [0.005, 0.05, 0.05, 0.5, 2.0, 0.1]
    observe_many(h1, bounds, values)
    for v in values:
        h2.observe(v)
    for le in ("0.01", "0.1", "1.0", "+Inf"):
        assert reg.get_sample_value("h1_bucket", {"le": le}) == reg.get_sample_value(
            "h2_bucket", {"le": le}
        )
    assert reg.get_sample_value("h1_sum") == pytest.approx(reg.get_sample_value("h2_sum"))


def test_hooks_sink_takes_spec_decode_and_external_lookups() -> None:
    rec = make_recorder(spec_config(2), 0, environ={"GPUMETRICS_VLLM_ENDPOINT": "127.0.0.1:0"})
    sink = rec.sink
    assert isinstance(sink, HooksSink)
    assert sink.endpoint is not None
    try:
        step = sched(running=2)
        step.spec_decoding_stats = spec_stats(2, 4, [2, 1])
        step.connector_prefix_cache_stats = NS(requests=1, queries=40, hits=16)
        rec.record(step, iteration(generated=2))
        page = sink.metrics.render_text().decode()
    finally:
        sink.endpoint.close()
    labels = '{engine="vllm",model="tiny"}'
    assert f"{cat.SPEC_DRAFTS.name}{labels} 2" in page
    assert f"{cat.SPEC_ACCEPTED_TOKENS.name}{labels} 3" in page
    assert f"{cat.EXTERNAL_PREFIX_QUERIED.name}{labels} 40" in page
    assert f"{cat.EXTERNAL_PREFIX_HIT.name}{labels} 16" in page


def test_settings_read_the_draft_length() -> None:
    assert settings(spec_config(4), {}).spec_tokens == 4
    assert settings(vllm_config(), {}).spec_tokens == 0
    reading = StepReader().read(sched(), iteration())
    assert (reading.spec_accepted_per_position, reading.external_queries) == ((), 0)


def test_multiprocess_mode_takes_the_direct_updates(tmp_path: Path) -> None:
    """Under PROMETHEUS_MULTIPROC_DIR the direct value updates land in the files the
    MultiProcessCollector aggregates (counters, histogram buckets, gauges)."""
    code = textwrap.dedent(
        """
        import sys
        sys.path[:0] = [sys.argv[1]]
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess
        from gpumetrics.integrations.vllm_record import make_recorder
        from tests.integrations.test_vllm import iteration, sched, vllm_config
        rec = make_recorder(vllm_config(), 0, environ={})
        for _ in range(3):
            rec.record(sched(running=4, details=(0, 4, 5.0)),
                       iteration(generated=4, itls=(0.02, 0.02, 0.02, 0.02)))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        print(generate_latest(registry).decode())
        """
    )
    env: dict[str, Any] = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-c", code, str(REPO)]
    out = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120, check=True)
    page = out.stdout
    labels = 'dp_rank="0",engine="vllm",model="tiny"'
    assert f'{cat.STEP_TOKENS.name}{{{labels},phase="decode"}} 12.0' in page
    assert f"{cat.GENERATED_TOKENS.name}{{{labels}}} 12.0" in page
    assert f"{cat.STEP_DURATION.name}_count{{{labels}}} 3.0" in page
    assert f"{cat.ITL.name}_count{{{labels}}} 12.0" in page
    assert f"{cat.RUNNING_SEQUENCES.name}{{{labels}}} 4.0" in page
