"""Fuzz: whatever text an engine sends, parse + map either returns well-formed catalog samples
or raises EngineError code "parse" (or "unknown_kind" when the kind is auto-detected)."""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpumetrics.catalog import engine as e
from gpumetrics.samples import Collection, HistogramValue
from gpumetrics.sources.engine import KINDS, EngineConfig, EngineError, collection_from_text

DATA = Path(__file__).resolve().parent.parent / "data" / "engines"
FIXTURES = sorted(p.read_text(encoding="utf-8") for p in DATA.glob("*.txt"))
SPECS = {spec.name: spec for spec in e.ALL}
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Fragments that exposition text is made of, to reach deeper than random characters do.
TOKENS = st.sampled_from(
    [
        "vllm:num_requests_running", "vllm:kv_cache_usage_perc", "sglang:token_usage",
        "vllm:time_to_first_token_seconds_bucket", "vllm:time_to_first_token_seconds_sum",
        "vllm:time_to_first_token_seconds_count", "vllm:cache_config_info",
        "sglang:realtime_tokens_total", "nv_trt_llm_kv_cache_block_metrics",
        "vllm:estimated_flops_per_gpu_total", "gpumetrics_engine_steps_total",
        "gpumetrics_engine_step_duration_seconds_bucket", "sglang:page_size",
        "sglang:kv_used_tokens", "sglang:max_total_num_tokens", "priority", "{", "}", "=", ",",
        '"', " ", "\n",
        "\\", "le", "+Inf", "-Inf", "NaN", "1e308", "-1", "0.5", "# TYPE ", "# HELP ",
        " counter", " histogram", " gauge", "model_name", "engine", "mode", "tp_rank",
        "block_size", "prefill_cache", "kv_cache_block_type", "max", "fraction", "\t", "é", "\x00",
    ]
)  # fmt: skip


def _check(text: str, config: EngineConfig, allowed: frozenset[str]) -> None:
    try:
        collection = collection_from_text(text, config)
    except EngineError as exc:
        code = exc.code
    else:
        _well_formed(collection)
        return
    assert code in allowed, code


def _well_formed(collection: Collection) -> None:
    assert all(code in ("invalid_series", "duplicate_series") for code in collection.errors)
    for sample in collection.samples:
        spec = SPECS[sample.metric]
        assert len(sample.labels) == len(spec.labels)
        assert all(isinstance(label, str) for label in sample.labels)
        value = sample.value
        if isinstance(value, HistogramValue):
            assert math.isfinite(value.sum)
            assert all(math.isfinite(c) for c in (*value.counts, value.count))
            assert all(b <= value.count for b in value.counts)
        else:
            assert isinstance(value, float)
            assert math.isfinite(value)


@SETTINGS
@given(text=st.text(max_size=400), kind=st.sampled_from(KINDS))
def test_random_text_with_a_fixed_kind(text: str, kind: str) -> None:
    _check(text, EngineConfig("f", "http://127.0.0.1:9", kind=kind), frozenset({"parse"}))


@SETTINGS
@given(parts=st.lists(TOKENS, max_size=60), kind=st.sampled_from((*KINDS, "auto")))
def test_token_soup(parts: list[str], kind: str) -> None:
    config = EngineConfig("f", "http://127.0.0.1:9", kind=kind, gpus=("0", "1"))
    _check("".join(parts), config, frozenset({"parse", "unknown_kind"}))


@SETTINGS
@given(data=st.data())
def test_mutated_fixtures(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from(FIXTURES))
    for _ in range(data.draw(st.integers(1, 4))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 80)))
        edit = data.draw(st.sampled_from(("delete", "insert", "replace", "duplicate", "cut")))
        if edit == "delete":
            text = text[:start] + text[end:]
        elif edit == "insert":
            text = text[:start] + data.draw(st.text(max_size=20) | TOKENS) + text[start:]
        elif edit == "replace":
            text = text[:start] + data.draw(TOKENS) + text[end:]
        elif edit == "duplicate":
            text = text[:end] + text[start:end] + text[end:]
        else:
            text = text[:start]
    config = EngineConfig("f", "http://127.0.0.1:9", gpus=("0",))
    _check(text, config, frozenset({"parse", "unknown_kind"}))
