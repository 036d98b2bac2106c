"""The custom collector walks catalog x Snapshot and renders what prometheus_client parses."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gpumetrics import catalog
from gpumetrics.export.prometheus import render_text
from gpumetrics.samples import HistogramValue, Snapshot

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
