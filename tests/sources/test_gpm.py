"""GPM through the NVML source: the two-sample ring, the 0.1 s gate, units, NO_PERMISSION."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pynvml
import pytest

from gpumetrics.catalog import gpu as g
from gpumetrics.samples import Collection
from gpumetrics.sources.gpm import GPM_METRICS, MIN_INTERVAL_SECONDS
from gpumetrics.sources.nvml import NvmlSource
from gpumetrics.testing import DEFAULT_WORKLOAD, FakeNvml, ManualClock
from gpumetrics.units import MIB

from .conftest import START

Install = Callable[..., FakeNvml]
Open = Callable[..., NvmlSource]

GPM_NAMES = {m.spec.name for m in GPM_METRICS}


def _gpm(collection: Collection, gpu: str = "0") -> dict[tuple[str, ...], float]:
    """GPM samples of one GPU: (metric, *extra labels) -> value."""
    out: dict[tuple[str, ...], float] = {}
    for sample in collection.samples:
        if sample.metric in GPM_NAMES and sample.labels[0] == gpu:
            assert isinstance(sample.value, float)
            out[(sample.metric, *sample.labels[3:])] = sample.value
    return out


def test_ratios_and_bandwidths_equal_the_phase(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    install_fake("h200x8")
    source = open_source()
    clock.set(START + 12.0)  # prefill runs from 10 s to 30 s
    assert _gpm(source.collect(clock())) == {}  # no window yet
    clock.set(START + 13.5)
    values = _gpm(source.collect(clock()), "5")
    prefill = DEFAULT_WORKLOAD.phase_at(12.0).rates
    approx = pytest.approx
    assert values[(g.GPM_GRAPHICS_ACTIVE.name,)] == approx(prefill.utilization_gpu)
    assert values[(g.GPM_SM_ACTIVE.name,)] == approx(prefill.sm_active)
    assert values[(g.GPM_SM_OCCUPANCY.name,)] == approx(prefill.sm_occupancy)
    assert values[(g.GPM_TENSOR_ACTIVE.name,)] == approx(prefill.tensor_active)
    assert values[(g.GPM_DRAM_ACTIVE.name,)] == approx(prefill.dram_active)
    assert values[(g.GPM_PIPE_ACTIVE.name, "fp16")] == approx(prefill.fp16_active)
    assert values[(g.GPM_PIPE_ACTIVE.name, "fp32")] == approx(prefill.fp32_active)
    assert values[(g.GPM_PIPE_ACTIVE.name, "fp64")] == approx(prefill.fp64_active)
    assert values[(g.GPM_PIPE_ACTIVE.name, "integer")] == approx(prefill.integer_active)
    assert values[(g.GPM_PCIE_BANDWIDTH.name, "rx")] == approx(512 * MIB)
    assert values[(g.GPM_PCIE_BANDWIDTH.name, "tx")] == approx(prefill.pcie_tx_bytes_per_second)
    nvlink_tx = 18 * prefill.nvlink_tx_bytes_per_second
    assert values[(g.GPM_NVLINK_BANDWIDTH.name, "tx")] == approx(nvlink_tx)
    assert values[(g.GPM_NVLINK_BANDWIDTH.name, "rx")] == approx(nvlink_tx)
    assert len(values) == len(GPM_METRICS)


def test_decode_reads_memory_bound(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    install_fake("h100x8")
    source = open_source()
    clock.set(START + 40.0)
    source.collect(clock())
    clock.set(START + 41.0)
    values = _gpm(source.collect(clock()))
    assert values[(g.GPM_DRAM_ACTIVE.name,)] == pytest.approx(0.82)
    assert values[(g.GPM_TENSOR_ACTIVE.name,)] == pytest.approx(0.18)


def test_a_collect_sooner_than_the_minimum_keeps_the_baseline(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("h100x8")
    source = open_source(xid=False)
    clock.set(START + 8.0)  # idle: tensor 0
    source.collect(clock())
    clock.advance(MIN_INTERVAL_SECONDS / 2)
    assert _gpm(source.collect(clock())) == {}
    samples_taken = fake.calls()["nvmlGpmSampleGet"]
    assert samples_taken == 8  # the too-early collect took no sample
    clock.set(START + 12.0)  # window 8 s .. 12 s: 2 s idle + 2 s prefill
    values = _gpm(source.collect(clock()))
    assert values[(g.GPM_TENSOR_ACTIVE.name,)] == pytest.approx(0.78 / 2)


def test_no_permission_warns_once_and_fields_carry_on(
    install_fake: Install,
    open_source: Open,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = install_fake("h100x8")
    fake.gpm_no_permission()
    source = open_source()
    collections = []
    with caplog.at_level(logging.WARNING, logger="gpumetrics.sources.gpm"):
        for _ in range(3):
            collections.append(source.collect(clock()))
            clock.advance(1.0)
    warnings = [r for r in caplog.records if r.name == "gpumetrics.sources.gpm"]
    assert len(warnings) == 1
    assert "NO_PERMISSION" in warnings[0].getMessage()
    assert [c.errors for c in collections] == [("NVML_ERROR_NO_PERMISSION",), (), ()]
    assert not source.gpm_enabled
    last = collections[-1]
    assert not any(s.metric in GPM_NAMES for s in last.samples)
    names = {s.metric for s in last.samples}
    assert {g.GPU_POWER.name, g.NVLINK_DATA_BYTES.name, g.GPU_PCIE_BYTES.name} <= names
    assert fake.calls()["nvmlGpmSampleFree"] == 16
    assert source.errors_total == {"NVML_ERROR_NO_PERMISSION": 1}


def test_an_unsupported_metric_is_absent(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("h100x8")
    fake.gpm_not_supported(pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL)
    source = open_source()
    source.collect(clock())
    clock.advance(1.0)
    collection = source.collect(clock())
    values = _gpm(collection)
    assert (g.GPM_TENSOR_ACTIVE.name,) not in values
    assert (g.GPM_SM_ACTIVE.name,) in values
    assert collection.errors == ()


def test_a_failed_sample_restarts_the_window(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("h100x8")
    source = open_source()
    source.collect(clock())
    fake.fail("nvmlGpmSampleGet", pynvml.NVML_ERROR_TIMEOUT, gpu=4)
    clock.advance(1.0)
    failed = source.collect(clock())
    assert failed.errors == ("NVML_ERROR_TIMEOUT",)
    assert _gpm(failed, "4") == {}
    assert _gpm(failed, "3") != {}
    fake.clear_failures()
    clock.advance(1.0)
    assert _gpm(source.collect(clock()), "4") == {}  # new baseline
    clock.advance(1.0)
    assert _gpm(source.collect(clock()), "4") != {}


def test_gpm_off(install_fake: Install, open_source: Open, clock: ManualClock) -> None:
    fake = install_fake("h100x8")
    source = open_source(gpm=False)
    source.collect(clock())
    clock.advance(1.0)
    assert _gpm(source.collect(clock())) == {}
    assert "nvmlGpmSampleAlloc" not in fake.calls()
