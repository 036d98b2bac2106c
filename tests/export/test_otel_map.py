"""The pure half of the OTel export: URLs, instruments, the attribute table, OTLP buckets,
start times and snapshot frames."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpumetrics import catalog
from gpumetrics.catalog import Group, MetricSpec, MetricType, Source
from gpumetrics.catalog.spec import metric
from gpumetrics.export.otel_map import (
    DEFAULT_PROVIDER,
    GEN_AI_OPERATION,
    Frame,
    InstrumentKind,
    SnapshotView,
    StartTimes,
    attribute_key,
    attributes,
    exportable,
    histogram_rows,
    instrument_kind,
    otlp_buckets,
    otlp_metrics_url,
)
from gpumetrics.samples import HistogramValue, Sample, Snapshot

GPU = ("0", "GPU-abc", "NVIDIA H200")
ENGINE = ("vllm-0", "llama")
G, E, X = catalog.gpu, catalog.engine, catalog.health


# --- endpoint ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/metrics"),
        ("http://collector:4318/", "http://collector:4318/v1/metrics"),
        ("http://collector:4318/v1/metrics", "http://collector:4318/v1/metrics"),
        ("http://collector:4318/v1/metrics/", "http://collector:4318/v1/metrics"),
        ("https://gw.example/otlp", "https://gw.example/otlp/v1/metrics"),
        (" https://gw.example/otlp/?tenant=a ", "https://gw.example/otlp/v1/metrics?tenant=a"),
    ],
)
def test_endpoint_gets_the_metrics_path_once(endpoint: str, url: str) -> None:
    assert otlp_metrics_url(endpoint) == url


@pytest.mark.parametrize("endpoint", ["collector:4318", "ftp://collector/", "", "http://"])
def test_endpoint_must_be_an_http_url(endpoint: str) -> None:
    with pytest.raises(ValueError, match="http"):
        otlp_metrics_url(endpoint)


# --- instruments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        (G.GPU_POWER, InstrumentKind.GAUGE),
        (E.KV_USAGE, InstrumentKind.GAUGE),
        (G.GPU_MEMORY_USED, InstrumentKind.UP_DOWN_COUNTER),
        (G.GPU_MEMORY_TOTAL, InstrumentKind.UP_DOWN_COUNTER),
        (G.GPU_ENERGY, InstrumentKind.COUNTER),
        (E.PREFIX_HIT, InstrumentKind.COUNTER),
        (E.TTFT, InstrumentKind.HISTOGRAM),
        (G.GPU_INFO, None),
        (E.ENGINE_INFO, None),
    ],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_instrument_kind(spec: MetricSpec, kind: InstrumentKind | None) -> None:
    assert instrument_kind(spec) is kind


def _spec(name: str, otel_name: str, type_: MetricType = MetricType.GAUGE) -> MetricSpec:
    return metric(
        name,
        type_,
        "A test metric.",
        ("gpu",),
        source=Source.NVML,
        group=Group.GPU,
        otel_name=otel_name,
    )


def test_exportable_drops_info_and_keeps_the_first_of_an_otel_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = _spec("gpumetrics_gpu_a_bytes", "gpumetrics.gpu.same")
    second = _spec("gpumetrics_gpu_b_bytes", "gpumetrics.gpu.same")
    other = _spec("gpumetrics_gpu_c_bytes", "gpumetrics.gpu.other")
    with caplog.at_level(logging.WARNING):
        kept = exportable([G.GPU_INFO, first, second, other])
    assert kept == (first, other)
    assert "gpumetrics_gpu_b_bytes" in caplog.text


def test_exportable_catalog_has_one_entry_per_otel_name() -> None:
    kept = exportable(catalog.ALL)
    assert len({s.otel_name for s in kept}) == len(kept)
    assert all(s.type is not MetricType.INFO for s in kept)


# --- attributes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "label", "key"),
    [
        (G.GPU_POWER, "gpu_uuid", "hw.id"),
        (G.GPU_POWER, "gpu_model", "hw.model"),
        (G.GPU_POWER, "gpu", "gpumetrics.gpu.index"),
        (G.GPU_PCIE_BYTES, "direction", "network.io.direction"),
        (G.NVLINK_DATA_BYTES, "direction", "network.io.direction"),
        (G.NVLINK_LINK_DATA_BYTES, "link", "gpumetrics.link"),
        (G.GPU_ECC_ERRORS, "type", "error.type"),
        (G.GPU_ECC_ERRORS, "scope", "gpumetrics.scope"),
        (G.NVLINK_ERRORS, "error", "error.type"),
        (G.GPU_TEMPERATURE, "sensor", "hw.sensor_location"),
        (G.GPU_TEMPERATURE, "gpu_uuid", "hw.parent"),
        (G.GPU_CLOCK, "clock", "gpumetrics.clock"),
        (E.KV_USAGE, "engine", "gpumetrics.engine.name"),
        (E.KV_USAGE, "model", "gen_ai.request.model"),
        (E.STEPS, "phase", "gpumetrics.phase"),
        (catalog.network.IB_DATA_BYTES, "ib_device", "gpumetrics.ib_device"),
        (catalog.network.IB_DATA_BYTES, "port", "gpumetrics.port"),
        (X.SOURCE_UP, "source", "gpumetrics.source.name"),
        (X.SOURCE_ERRORS, "code", "error.type"),
    ],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_attribute_key_table(spec: MetricSpec, label: str, key: str) -> None:
    assert attribute_key(spec, label) == key


@pytest.mark.parametrize("spec", exportable(catalog.ALL), ids=lambda s: s.name)
def test_every_label_maps_to_a_distinct_namespaced_key(spec: MetricSpec) -> None:
    keys = [attribute_key(spec, label) for label in spec.labels]
    assert len(set(keys)) == len(keys)
    assert all("." in key for key in keys)


def test_gpu_attributes_follow_the_hardware_conventions() -> None:
    assert attributes(G.GPU_POWER, GPU) == {
        "gpumetrics.gpu.index": "0",
        "hw.id": "GPU-abc",
        "hw.model": "NVIDIA H200",
        "hw.type": "gpu",
        "hw.vendor": "nvidia",
    }


@pytest.mark.parametrize(("label", "value"), [("tx", "transmit"), ("rx", "receive")])
def test_direction_values_are_translated(label: str, value: str) -> None:
    attrs = attributes(G.GPU_PCIE_BYTES, (*GPU, label))
    assert attrs["network.io.direction"] == value


def test_unknown_direction_value_passes_through() -> None:
    assert attributes(G.GPU_PCIE_BYTES, (*GPU, "both"))["network.io.direction"] == "both"


def test_gen_ai_metrics_carry_operation_and_provider() -> None:
    attrs = attributes(E.TTFT, ENGINE, provider="vllm")
    assert attrs == {
        "gpumetrics.engine.name": "vllm-0",
        "gen_ai.request.model": "llama",
        "gen_ai.operation.name": GEN_AI_OPERATION,
        "gen_ai.provider.name": "vllm",
    }
    assert attributes(E.TTFT, ENGINE)["gen_ai.provider.name"] == DEFAULT_PROVIDER


def test_non_gen_ai_engine_metrics_carry_no_operation() -> None:
    attrs = attributes(E.KV_USAGE, ENGINE, provider="vllm")
    assert attrs == {"gpumetrics.engine.name": "vllm-0", "gen_ai.request.model": "llama"}


def test_attributes_reject_a_wrong_label_count() -> None:
    with pytest.raises(ValueError, match="takes labels"):
        attributes(G.GPU_POWER, ("0",))


# --- OTLP buckets -----------------------------------------------------------------------


def test_cumulative_buckets_become_per_bucket_counts() -> None:
    bounds = (0.1, 0.5, 1.0)
    buckets = otlp_buckets(HistogramValue(bounds, (1, 4, 4), 3.25, 6))
    assert buckets.explicit_bounds == bounds
    assert buckets.bucket_counts == (1, 3, 0, 2)
    assert buckets.count == 6
    assert buckets.sum == 3.25


def test_inf_bound_is_dropped_and_float_counts_are_rounded() -> None:
    value = HistogramValue((0.1, float("inf")), (2.0000001, 5.0), 1.0, 5.0)
    buckets = otlp_buckets(value)
    assert buckets.explicit_bounds == (0.1,)
    assert buckets.bucket_counts == (2, 3)
    assert buckets.count == 5


def test_a_total_below_the_last_bucket_is_raised_to_it() -> None:
    buckets = otlp_buckets(HistogramValue((1.0, 2.0), (3, 7), 9.0, 5))
    assert buckets.bucket_counts == (3, 4, 0)
    assert buckets.count == 7


@given(
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=20),
    st.integers(min_value=0, max_value=10**6),
)
def test_per_bucket_counts_add_back_up_to_the_cumulative_ones(steps: list[int], extra: int) -> None:
    cumulative = tuple(sum(steps[: i + 1]) for i in range(len(steps)))
    bounds = tuple(float(i + 1) for i in range(len(steps)))
    value = HistogramValue(bounds, tuple(map(float, cumulative)), 1.0, cumulative[-1] + extra)
    buckets = otlp_buckets(value)
    assert len(buckets.bucket_counts) == len(bounds) + 1
    running = [sum(buckets.bucket_counts[: i + 1]) for i in range(len(bounds))]
    assert tuple(running) == cumulative
    assert sum(buckets.bucket_counts) == buckets.count == cumulative[-1] + extra


# --- start times ------------------------------------------------------------------------


def test_start_time_is_kept_while_counts_grow_and_renewed_on_reset() -> None:
    starts = StartTimes()
    assert starts.update([("a", 5.0), ("b", 1.0)], 100) == {"a": 100, "b": 100}
    assert starts.update([("a", 5.0), ("b", 3.0)], 200) == {"a": 100, "b": 100}
    assert starts.update([("a", 2.0), ("b", 3.0)], 300) == {"a": 300, "b": 100}


def test_a_vanished_series_starts_again_when_it_returns() -> None:
    starts = StartTimes()
    starts.update([("a", 5.0)], 100)
    starts.update([], 200)
    assert starts.update([("a", 9.0)], 300) == {"a": 300}


# --- frames -----------------------------------------------------------------------------


def _histogram(count: int) -> HistogramValue:
    bounds = E.TTFT.buckets
    return HistogramValue(bounds, (float(count),) * len(bounds), 0.5 * count, count)


def test_frame_takes_engine_kinds_from_engine_info() -> None:
    snapshot = Snapshot(
        1.0,
        (
            E.ENGINE_INFO.sample(1, *ENGINE, "sglang"),
            E.TTFT.sample(_histogram(2), *ENGINE),
            E.TTFT.sample(_histogram(1), "other", "llama"),
        ),
    )
    series = list(Frame.of(snapshot).series(E.TTFT))
    assert [s.attributes["gen_ai.provider.name"] for s in series] == ["sglang", DEFAULT_PROVIDER]


def test_frame_skips_samples_with_the_wrong_label_count() -> None:
    snapshot = Snapshot(1.0, (G.GPU_POWER.sample(1.0, *GPU), Sample(G.GPU_POWER.name, ("0",), 2.0)))
    assert [s.value for s in Frame.of(snapshot).series(G.GPU_POWER)] == [1.0]


def test_snapshot_view_pins_one_read_per_cycle() -> None:
    reads: list[int] = []

    def source() -> Snapshot:
        reads.append(1)
        return Snapshot(float(len(reads)))

    view = SnapshotView(source)
    pinned = view.pin()
    assert view.current() is pinned
    assert view.current() is pinned
    assert len(reads) == 1
    view.unpin()
    assert view.current().snapshot.taken_at == 2.0


def test_snapshot_view_survives_a_raising_source(caplog: pytest.LogCaptureFixture) -> None:
    def source() -> Snapshot:
        raise RuntimeError("sampler gone")

    with caplog.at_level(logging.ERROR):
        frame = SnapshotView(source).pin()
    assert frame.snapshot.samples == ()
    assert "reading the snapshot failed" in caplog.text


def test_histogram_rows_carry_buckets_attributes_and_start_times() -> None:
    starts = StartTimes()
    frame = Frame.of(Snapshot(1.0, (E.TTFT.sample(_histogram(4), *ENGINE),)))
    (row,) = histogram_rows(frame, [E.TTFT, G.GPU_POWER], starts, 1_000)
    assert row.spec is E.TTFT
    assert row.buckets.count == 4
    assert row.attributes["gen_ai.request.model"] == "llama"
    assert (row.start_time_unix_nano, row.time_unix_nano) == (1_000, 1_000)
    (later,) = histogram_rows(frame, [E.TTFT], starts, 2_000)
    assert (later.start_time_unix_nano, later.time_unix_nano) == (1_000, 2_000)
