"""The custom collector walks catalog x Snapshot and renders what prometheus_client parses."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from gpumetrics import catalog
from gpumetrics.catalog import MetricType
from gpumetrics.export.prometheus import PrometheusEndpoint, render_text
from gpumetrics.samples import HistogramValue, Snapshot

from ..catalog.test_catalog import _one_sample_each

GPU = ("0", "GPU-abc", "NVIDIA H200")


def _parse(snapshot: Snapshot) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(render_text(snapshot).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_counter_gauge_info_and_histogram_round_trip() -> None:
    ttft = catalog.engine.TTFT
    snapshot = Snapshot(
        taken_at=1.0,
        samples=(
            catalog.gpu.GPU_POWER.sample(512.25, *GPU),
            catalog.gpu.GPU_ENERGY.sample(1.5e6, *GPU),
            catalog.gpu.GPU_INFO.sample(1, *GPU, "0000:01:00.0", "580.1", "13.0", ""),
            ttft.sample(
                HistogramValue(ttft.buckets, (0,) * 3 + (2,) * (len(ttft.buckets) - 3), 0.3, 3),
                "vllm-0",
                "llama",
            ),
        ),
    )
    parsed = _parse(snapshot)
    assert parsed["gpumetrics_gpu_power_watts"] == [
        ({"gpu": "0", "gpu_uuid": "GPU-abc", "gpu_model": "NVIDIA H200"}, 512.25)
    ]
    assert parsed["gpumetrics_gpu_energy_joules_total"][0][1] == 1.5e6
    assert parsed["gpumetrics_gpu_info"][0][0]["driver_version"] == "580.1"
    buckets = parsed["gpumetrics_engine_time_to_first_token_seconds_bucket"]
    assert buckets[-1] == ({"engine": "vllm-0", "model": "llama", "le": "+Inf"}, 3.0)
    assert parsed["gpumetrics_engine_time_to_first_token_seconds_count"][0][1] == 3.0


def test_metrics_without_samples_are_absent() -> None:
    parsed = _parse(Snapshot(taken_at=1.0, samples=(catalog.gpu.GPU_POWER.sample(1.0, *GPU),)))
    assert list(parsed) == ["gpumetrics_gpu_power_watts"]


def _series(families: Iterable[Metric]) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in families
        for sample in family.samples
    }


def test_openmetrics_page_parses_and_has_the_same_series_as_the_classic_page() -> None:
    """What the generated dashboards and rules query must exist under the same names whichever
    format Prometheus negotiated: counters `*_total`, info `*_info`, histogram parts."""
    snapshot = _one_sample_each()
    endpoint = PrometheusEndpoint(lambda: snapshot)
    classic, classic_type = endpoint.render("text/plain;version=0.0.4")
    om, om_type = endpoint.render(
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    )
    assert classic_type.startswith("text/plain; version=0.0.4")
    assert om_type == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert om.endswith(b"# EOF\n")
    assert not classic.endswith(b"# EOF\n")
    om_series = _series(openmetrics_families(om.decode()))  # raises on any format error
    assert om_series == _series(text_string_to_metric_families(classic.decode()))
    names = {name for name, _, _ in om_series}
    for spec in catalog.ALL:
        if spec.type is MetricType.COUNTER:
            assert spec.name.endswith("_total")
            assert spec.name in names
        elif spec.type is MetricType.INFO:
            assert spec.name.endswith("_info")
            assert spec.name in names
    assert not any(name.endswith("_created") for name in names)
