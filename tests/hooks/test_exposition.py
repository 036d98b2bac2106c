"""render_text(): valid classic Prometheus text, the catalog's names/types/help/labels/buckets,
the same values as snapshot(), correct escaping; promtool accepts it."""

from __future__ import annotations

import math
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample as PromSample

from gpumetrics import catalog
from gpumetrics.catalog import engine as cat
from gpumetrics.costmodel import RequestWork
from gpumetrics.hooks import EngineMetrics, render_samples
from gpumetrics.promtext import escape_help, escape_label_value, format_value
from gpumetrics.samples import HistogramValue

from .helpers import SMALL

NASTY = 'llama "3"\\8b\nline2'


def _busy(engine: str = "e0", model: str = "m0") -> EngineMetrics:
    m = EngineMetrics(
        engine,
        model,
        model_spec=SMALL,
        max_batch_sequences=8,
        max_batch_tokens=2048,
        kv_block_size=16,
        kv_capacity_blocks=64,
    )
    m.record_step(
        phase="prefill",
        sequences=1,
        prefill_tokens=5,
        decode_tokens=0,
        duration_s=0.02,
        work=[RequestWork.prefill(5)],
    )
    m.record_step(
        phase="decode",
        sequences=1,
        prefill_tokens=0,
        decode_tokens=1,
        duration_s=7.5,
        work=[RequestWork.decode(6)],
    )
    m.record_kv(used_blocks=3, total_blocks=64, evictable_blocks=2)
    m.record_prefix_lookup(queried_tokens=5, hit_tokens=2)
    m.record_eviction(2)
    m.record_recompute(4)
    m.record_preemption()
    m.set_queue(2, 1)
    m.record_request_finished(
        ttft_s=0.03,
        inter_token_s=[0.02, 0.5],
        e2e_s=1.2,
        prompt_tokens=5,
        cached_tokens=2,
        output_tokens=3,
    )
    return m


def _parsed(text: str) -> dict[str, tuple[str, str, list[PromSample]]]:
    return {
        f.name: (f.type, f.documentation, f.samples) for f in text_string_to_metric_families(text)
    }


def test_families_match_the_catalog_and_values_match_the_snapshot() -> None:
    m = _busy()
    parsed = _parsed(m.render_text().decode())
    samples = {(s.metric, s.labels): s.value for s in m.snapshot()}
    specs = {s.metric: catalog.get(s.metric) for s in m.snapshot()}
    assert len(parsed) == len(specs)
    for name, spec in specs.items():
        # The parser names counter families without _total; the classic format has no info
        # type, so info metrics are gauges under their full name.
        is_counter = spec.type is catalog.MetricType.COUNTER
        kind, documentation, got = parsed[spec.base_name if is_counter else name]
        assert documentation == spec.help
        assert kind == ("gauge" if spec.type is catalog.MetricType.INFO else spec.type.value)
        assert got
        for sample in got:
            is_bucket = sample.name == f"{name}_bucket"
            assert set(sample.labels) == set(spec.labels) | ({"le"} if is_bucket else set())
            labels = tuple(sample.labels[label] for label in spec.labels)
            value = samples[(name, labels)]
            if isinstance(value, HistogramValue):
                assert sample.name in {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
                if is_bucket:
                    le = float(sample.labels["le"])
                    if math.isinf(le):
                        assert sample.value == value.count
                    else:
                        assert sample.value == value.counts[value.bounds.index(le)]
                elif sample.name.endswith("_sum"):
                    assert sample.value == pytest.approx(value.sum)
                else:
                    assert sample.value == value.count
            else:
                assert sample.name == name
                assert sample.value == pytest.approx(value)


def test_histogram_buckets_are_the_catalogs_and_end_in_inf() -> None:
    parsed = _parsed(_busy().render_text().decode())
    for spec in (cat.STEP_DURATION, cat.TTFT, cat.ITL, cat.E2E):
        _, _, samples = parsed[spec.name]
        les = [s.labels["le"] for s in samples if s.name.endswith("_bucket")]
        assert les == [repr(float(b)) for b in spec.buckets] + ["+Inf"]
        counts = [s.value for s in samples if s.name.endswith("_bucket")]
        assert counts == sorted(counts)  # cumulative
        count = next(s.value for s in samples if s.name.endswith("_count"))
        assert counts[-1] == count


def test_text_layout() -> None:
    text = _busy().render_text().decode()
    assert text.endswith("\n")
    assert 'gpumetrics_engine_info{engine="e0",model="m0",kind="gpumetrics"} 1\n' in text
    assert "# TYPE gpumetrics_engine_steps_total counter\n" in text
    assert 'gpumetrics_engine_steps_total{engine="e0",model="m0",phase="decode"} 1\n' in text
    assert "# TYPE gpumetrics_engine_step_duration_seconds histogram\n" in text
    step = 'gpumetrics_engine_step_duration_seconds_bucket{engine="e0",model="m0",le='
    assert f'{step}"2.5"}} 1\n{step}"+Inf"}} 2\n' in text  # 7.5 s is only in +Inf


def test_label_values_are_escaped() -> None:
    m = _busy(engine="eng\\ine", model=NASTY)
    text = m.render_text().decode()
    assert 'model="llama \\"3\\"\\\\8b\\nline2"' in text
    parsed = list(text_string_to_metric_families(text))
    for family in parsed:
        for sample in family.samples:
            assert sample.labels["model"] == NASTY
            assert sample.labels["engine"] == "eng\\ine"


def test_escape_functions() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert escape_help('a"b\\c\nd') == 'a"b\\\\c\\nd'
    assert [format_value(v) for v in (3, 0.5, 1e21, math.inf, -math.inf, 10**20)] == [
        "3",
        "0.5",
        "1e+21",
        "+Inf",
        "-Inf",
        "100000000000000000000",
    ]
    assert format_value(math.nan) == "NaN"


def test_surrogates_in_names_are_replaced_not_fatal() -> None:
    m = EngineMetrics("e0", "bad\udcff")
    assert m.model == "bad?"
    assert b'model="bad?"' in m.render_text()


def test_several_engines_render_each_family_once() -> None:
    a, b = _busy("a"), _busy("b", "other")
    text = render_samples([*a.snapshot(), *b.snapshot()]).decode()
    assert text.count("# TYPE gpumetrics_engine_steps_total ") == 1
    families = _parsed(text)
    engines = {s.labels["engine"] for s in families[cat.STEPS.base_name][2]}
    assert engines == {"a", "b"}


def test_render_samples_of_nothing_is_empty() -> None:
    assert render_samples([]) == b""


def test_promtool_accepts_the_page(promtool: str) -> None:
    a, b = _busy("a", NASTY), _busy("b")
    for text in (a.render_text(), render_samples([*a.snapshot(), *b.snapshot()])):
        result = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
        assert result.stdout.decode().strip() == ""
