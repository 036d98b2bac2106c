"""The catalog obeys the naming rules, and its whole exposition passes promtool's lint."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gpumetrics import catalog
from gpumetrics.catalog import MetricSpec, MetricType, naming_problems
from gpumetrics.catalog.spec import metric, unit_of
from gpumetrics.export.prometheus import render_text
from gpumetrics.render import check, write
from gpumetrics.render.metrics_md import render_metrics_md
from gpumetrics.samples import HistogramValue, Snapshot


def _one_sample_each() -> Snapshot:
    samples = []
    for spec in catalog.ALL:
        labels = tuple(f"{name}-value" for name in spec.labels)
        if spec.type is MetricType.HISTOGRAM:
            counts = tuple(float(i) for i in range(len(spec.buckets)))
            value: float | HistogramValue = HistogramValue(spec.buckets, counts, 12.5, 40.0)
        else:
            value = 3.0
        samples.append(spec.sample(value, *labels))
    return Snapshot(taken_at=0.0, samples=tuple(samples))


@pytest.mark.parametrize("spec", catalog.ALL, ids=lambda s: s.name)
def test_every_entry_follows_the_naming_rules(spec: MetricSpec) -> None:
    assert naming_problems(spec) == []


def test_names_are_unique_and_lookup_works() -> None:
    assert len(catalog.BY_NAME) == len(catalog.ALL)
    assert catalog.get("gpumetrics_gpu_power_watts") is catalog.gpu.GPU_POWER
    with pytest.raises(KeyError, match="not in the catalog"):
        catalog.get("gpumetrics_gpu_powr_watts")


def test_catalog_covers_the_planned_families() -> None:
    names = set(catalog.BY_NAME)
    for needed in (
        "gpumetrics_gpu_memory_used_bytes",
        "gpumetrics_gpu_energy_joules_total",
        "gpumetrics_gpu_throttle_reason_active",
        "gpumetrics_gpu_nvlink_data_bytes_total",
        "gpumetrics_gpu_tensor_active_ratio",
        "gpumetrics_gpu_dram_active_ratio",
        "gpumetrics_gpu_xid_errors_total",
        "gpumetrics_ib_port_data_bytes_total",
        "gpumetrics_engine_kv_cache_usage_ratio",
        "gpumetrics_engine_prefix_cache_queried_tokens_total",
        "gpumetrics_engine_prefix_cache_hit_tokens_total",
        "gpumetrics_engine_kv_cache_evicted_blocks_total",
        "gpumetrics_engine_recomputed_tokens_total",
        "gpumetrics_engine_preemptions_total",
        "gpumetrics_engine_step_sequences_total",
        "gpumetrics_engine_max_batch_sequences",
        "gpumetrics_engine_compute_flops_total",
        "gpumetrics_engine_memory_read_bytes_total",
        "gpumetrics_engine_time_to_first_token_seconds",
        "gpumetrics_gpu_peak_flops_per_second",
        "gpumetrics_source_up",
        "gpumetrics_source_errors_total",
    ):
        assert needed in names


def test_otel_names_follow_semantic_conventions_where_they_exist() -> None:
    assert catalog.gpu.GPU_POWER.otel_name == "hw.power"
    assert catalog.gpu.GPU_POWER.otel_unit == "W"
    assert catalog.gpu.GPU_ENERGY.otel_name == "hw.energy"
    assert catalog.gpu.GPU_UP.otel_name == "hw.status"
    assert catalog.gpu.GPU_TEMPERATURE.otel_unit == "Cel"
    assert catalog.engine.TTFT.otel_name == "gen_ai.server.time_to_first_token"
    assert catalog.engine.ITL.otel_name == "gen_ai.server.time_per_output_token"
    assert catalog.engine.KV_USAGE.otel_name == "gpumetrics.engine.kv_cache_usage"
    assert catalog.engine.KV_USAGE.otel_unit == "1"


def test_otel_names_are_unique_and_well_formed() -> None:
    names = [spec.otel_name for spec in catalog.ALL]
    assert len(set(names)) == len(names), [n for n in names if names.count(n) > 1]
    for name in names:
        assert not name.endswith(".")
        assert "." in name
    assert catalog.engine.RECOMPUTED_TOKENS.otel_name == "gpumetrics.engine.recomputed_tokens"
    assert catalog.health.SOURCE_ERRORS.otel_name == "gpumetrics.source.errors"


def test_units_come_from_names() -> None:
    assert unit_of("gpumetrics_gpu_nvlink_speed_bytes_per_second") == "bytes_per_second"
    assert unit_of("gpumetrics_gpu_energy_joules_total") == "joules"
    assert unit_of("gpumetrics_engine_steps_total") == ""


def test_naming_rules_catch_bad_entries() -> None:
    bad = metric(
        "gpumetrics_engine_latency_ms",
        MetricType.COUNTER,
        "no capital and no stop",
        ("le",),
        source=catalog.Source.ENGINE,
        group=catalog.Group.ENGINE_LATENCY,
    )
    problems = " | ".join(naming_problems(bad))
    assert "_total" in problems
    assert "bad label 'le'" in problems
    assert "capital" in problems


def test_sample_checks_label_count() -> None:
    with pytest.raises(ValueError, match="takes labels"):
        catalog.gpu.GPU_POWER.sample(1.0, "0")


def test_whole_catalog_exposition_passes_promtool(promtool: str) -> None:
    text = render_text(_one_sample_each())
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == ""
    # Every family made it into the exposition, with its HELP line.
    decoded = text.decode()
    for spec in catalog.ALL:
        assert f"# HELP {spec.name} " in decoded


def test_metrics_md_is_current(repo_root: Path) -> None:
    assert check(repo_root) == [], "METRICS.md is stale: run `gpumetrics render`"


def test_render_writes_then_reports_nothing_to_do(tmp_path: Path) -> None:
    assert "METRICS.md" in write(tmp_path)
    assert write(tmp_path) == []
    assert check(tmp_path) == []
    (tmp_path / "METRICS.md").write_text("edited by hand\n")
    assert check(tmp_path) == ["METRICS.md"]  # only the edited file is stale


def test_metrics_md_lists_every_metric() -> None:
    page = render_metrics_md()
    for spec in catalog.ALL:
        assert f"`{spec.name}`" in page
