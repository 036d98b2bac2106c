"""NvmlSource on FakeNvml profiles: samples, units, rates from the workload script, faults."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pynvml
import pytest

from gpumetrics.catalog import MetricSpec
from gpumetrics.catalog import gpu as g
from gpumetrics.catalog import mig as mig_catalog
from gpumetrics.errors import UnavailableError
from gpumetrics.hardware import GPUS, with_overrides
from gpumetrics.samples import Collection, Sample
from gpumetrics.sources import Source
from gpumetrics.sources.nvml import LOST, NvmlSource
from gpumetrics.sources.nvml_fields import (
    STATIC_REFRESH_CYCLES,
    FieldBatch,
    FieldRead,
    field_value,
)
from gpumetrics.sources.nvml_lib import GpuLostError
from gpumetrics.testing import FakeNvml, GpuRates, ManualClock, Phase, Workload
from gpumetrics.testing.sample_values import scalar_values
from gpumetrics.units import GIB, MIB

from .conftest import START

Install = Callable[..., FakeNvml]
Open = Callable[..., NvmlSource]

# A workload whose integrals are whole numbers in NVML's units, for rate tests.
PHASE_A = GpuRates(
    power_watts=300.0,
    nvlink_tx_bytes_per_second=4 * GIB,
    nvlink_rx_bytes_per_second=2 * GIB,
    pcie_tx_bytes_per_second=64 * MIB,
    pcie_rx_bytes_per_second=128 * MIB,
    clock_event_reasons=("sw_power_cap",),
)
PHASE_B = GpuRates(
    power_watts=500.0,
    nvlink_tx_bytes_per_second=1 * GIB,
    nvlink_rx_bytes_per_second=3 * GIB,
    pcie_tx_bytes_per_second=32 * MIB,
    pcie_rx_bytes_per_second=16 * MIB,
)
GPU1_IN_B = GpuRates(power_watts=200.0, nvlink_tx_bytes_per_second=8 * GIB)
RATES = Workload((Phase("a", 10.0, PHASE_A), Phase("b", 20.0, PHASE_B, per_gpu=((1, GPU1_IN_B),))))


def _labels(fake: FakeNvml, gpu: int) -> tuple[str, str, str]:
    device = fake.devices[gpu]
    return (str(gpu), device.uuid, device.name)


def _value(collection: Collection, spec: MetricSpec, *labels: str) -> float:
    return scalar_values(collection)[(spec.name, labels)]


def _metrics_of(collection: Collection, gpu_key: str) -> set[str]:
    return {s.metric for s in collection.samples if s.labels[0] == gpu_key}


def _rate(
    first: Collection, second: Collection, seconds: float, spec: MetricSpec, *labels: str
) -> float:
    return (_value(second, spec, *labels) - _value(first, spec, *labels)) / seconds


# --- profiles ---------------------------------------------------------------------------------


def test_is_a_source(install_fake: Install, open_source: Open) -> None:
    install_fake("a100")
    source = open_source()
    assert isinstance(source, Source)
    assert source.name == "nvml"


def test_h100x8_emits_every_family_per_gpu(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("h100x8")
    source = open_source()
    clock.advance(1.0)
    source.collect(clock())
    clock.advance(14.0)  # prefill
    collection = source.collect(clock())
    assert collection.errors == ()
    expected = {spec.name for spec in g.ALL if spec is not g.GPU_PROCESS_MEMORY}
    expected -= {g.GPU_XID_ERRORS.name, *(spec.name for spec in g.NVLINK_PER_LINK)}
    for gpu in range(8):
        assert _metrics_of(collection, str(gpu)) == expected
    labels = _labels(fake, 6)
    info = [s for s in collection.samples if s.metric == g.GPU_INFO.name and s.labels[0] == "6"]
    assert info[0].labels == (*labels, "00000000:BA:00.0", "570.124.06", "12.8", "disabled")
    assert _value(collection, g.GPU_POWER, *labels) == 620.0
    assert _value(collection, g.GPU_POWER_LIMIT, *labels) == 700.0
    assert _value(collection, g.GPU_MEMORY_TOTAL, *labels) == 81559 * MIB
    assert _value(collection, g.GPU_TEMPERATURE, *labels, "gpu") == 68.0
    assert _value(collection, g.GPU_TEMPERATURE, *labels, "memory") == 72.0
    assert _value(collection, g.GPU_CLOCK_MAX, *labels, "sm") == 1980e6
    assert _value(collection, g.GPU_CLOCK, *labels, "memory") == 2619e6
    assert _value(collection, g.GPU_UTILIZATION_NAIVE, *labels) == 1.0
    assert _value(collection, g.GPU_MEMORY_UTILIZATION_NAIVE, *labels) == 0.45
    assert _value(collection, g.NVLINK_LINKS, *labels) == 18.0
    assert _value(collection, g.NVLINK_LINKS_UP, *labels) == 18.0
    for error in ("replay", "recovery", "crc"):  # present at 0 from the start
        assert _value(collection, g.NVLINK_DL_ERRORS, *labels, error) == 0.0
    assert _value(collection, g.GPU_THROTTLE_ACTIVE, *labels, "sw_power_cap") == 1.0
    assert _value(collection, g.GPU_THROTTLE_ACTIVE, *labels, "gpu_idle") == 0.0
    assert _value(collection, g.GPU_THROTTLE_TIME, *labels, "sw_power_cap") == 5.0
    assert _value(collection, g.GPU_THROTTLE_TIME, *labels, "low_utilization") == 10.0
    assert _value(collection, g.GPU_ECC_ERRORS, *labels, "uncorrected", "aggregate") == 0.0
    assert _value(collection, g.GPU_UP, *labels) == 1.0


def test_nvlink_per_link_adds_the_per_link_families(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("h100x8")
    source = open_source(nvlink_per_link=True)
    source.collect(clock())
    clock.advance(15.0)
    collection = source.collect(clock())
    assert collection.errors == ()
    expected = {spec.name for spec in g.ALL if spec is not g.GPU_PROCESS_MEMORY}
    assert _metrics_of(collection, "3") == expected - {g.GPU_XID_ERRORS.name}
    labels = _labels(fake, 3)
    assert _value(collection, g.NVLINK_LINK_UP, *labels, "17") == 1.0
    assert _value(collection, g.NVLINK_SPEED, *labels, "0") == 26562e6
    per_link = [s for s in collection.samples if s.labels[0] == "3" and len(s.labels) > 3]
    nvlink = [s for s in per_link if s.metric in {spec.name for spec in g.NVLINK_PER_LINK}]
    assert len(nvlink) == 18 * 9  # data tx/rx, raw tx/rx, up, speed, 3 errors per link


def test_per_gpu_nvlink_totals_sum_the_links(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("h100x8")
    crc = pynvml.NVML_FI_DEV_NVLINK_ERROR_DL_CRC
    fake.set_field(1, crc, 3, scope=2)
    fake.set_field(1, crc, 4, scope=11)
    fake.set_field(1, pynvml.NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY, 7, scope=0)
    fake.set_field(1, pynvml.NVML_FI_DEV_NVLINK_GET_STATE, 0, scope=5)
    fake.set_field(1, pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, 1000, scope=4)
    clock.advance(12.0)
    lean = open_source(gpm=False, xid=False).collect(clock())
    full = open_source(gpm=False, xid=False, nvlink_per_link=True).collect(clock())
    labels = _labels(fake, 1)
    assert _value(lean, g.NVLINK_DL_ERRORS, *labels, "crc") == 7.0
    assert _value(lean, g.NVLINK_DL_ERRORS, *labels, "replay") == 7.0
    assert _value(lean, g.NVLINK_DL_ERRORS, *labels, "recovery") == 0.0
    assert _value(lean, g.NVLINK_LINKS_UP, *labels) == 17.0
    # 2 s of prefill at 2 GiB/s per link on 17 links, link 4 pinned at 1000 KiB
    assert _value(lean, g.NVLINK_DATA_BYTES, *labels, "tx") == 17 * 4 * GIB + 1000 * 1024
    assert not {s.metric for s in lean.samples} & {spec.name for spec in g.NVLINK_PER_LINK}
    for direction in ("tx", "rx"):  # the total is the sum of the per-link series
        links = sum(
            _value(full, g.NVLINK_LINK_DATA_BYTES, *labels, str(link), direction)
            for link in range(18)
        )
        assert _value(full, g.NVLINK_DATA_BYTES, *labels, direction) == links
    assert _value(full, g.NVLINK_DL_ERRORS, *labels, "crc") == 7.0
    assert _value(full, g.NVLINK_LINK_ERRORS, *labels, "11", "crc") == 4.0


def test_lean_field_request_skips_the_per_link_only_fields(
    install_fake: Install, open_source: Open
) -> None:
    install_fake("h100x8")
    lean = open_source(gpm=False, xid=False)
    full = open_source(gpm=False, xid=False, nvlink_per_link=True)
    lean_ids = {read.field_id for read in lean.devices[0].reads}
    full_ids = {read.field_id for read in full.devices[0].reads}
    per_link_only = {
        pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_RAW_TX,
        pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_RAW_RX,
        pynvml.NVML_FI_DEV_NVLINK_GET_SPEED,
    }
    assert full_ids - lean_ids == per_link_only
    assert len(full.devices[0].reads) - len(lean.devices[0].reads) == 18 * 3


def test_one_batched_field_call_per_gpu_per_sample(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("h100x8")
    source = open_source(gpm=False, xid=False)
    before = fake.calls().get("nvmlDeviceGetFieldValues", 0)
    source.collect(clock())
    assert fake.calls()["nvmlDeviceGetFieldValues"] - before == 8


def test_batched_fields_decode_as_pynvmls_own_wrapper_reads_them(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    """The hot path (copied request, struct decode, reused Samples) gives, field for field,
    what pynvml.nvmlDeviceGetFieldValues and its ctypes accessors give."""
    install_fake("h200x8")
    source = open_source(gpm=False, xid=False, nvlink_per_link=True)
    for _ in range(3):
        clock.advance(0.7)
        got = scalar_values(source.collect(clock()))
        checked = 0
        for device in source.devices:
            requests = [read.request for read in device.reads]
            values = pynvml.nvmlDeviceGetFieldValues(device.handle, requests)
            for read, value in zip(device.reads, values, strict=True):
                assert value.nvmlReturn == pynvml.NVML_SUCCESS
                raw = field_value(value)
                assert raw is not None
                expected = read.sample(raw, device.labels)
                assert got[(expected.metric, expected.labels)] == expected.value
                checked += 1
        assert checked == 8 * len(source.devices[0].reads)


def _set_entry(
    entry: Any, code: int, value_type: int = 0, member: str = "", raw: float = 0
) -> None:
    """Fill one nvmlFieldValue_t as the driver would."""
    entry.nvmlReturn = code
    entry.valueType = value_type
    if member:
        setattr(entry.value, member, raw)


def test_field_batch_reads_every_value_type_and_return_code() -> None:
    reasons = ("a", "b", "c", "d", "e", "f", "g", "h", "i")
    reads = tuple(
        FieldRead(pynvml.NVML_FI_DEV_PERF_POLICY_POWER, None, g.GPU_THROTTLE_TIME, (r,), 1e-9)
        for r in reasons
    )
    batch = FieldBatch(reads, ("0", "GPU-x", "NVIDIA H200"))
    values = batch.request()
    assert len(values) == len(reads)
    assert [int(v.fieldId) for v in values] == [pynvml.NVML_FI_DEV_PERF_POLICY_POWER] * 9
    ok = pynvml.NVML_SUCCESS
    _set_entry(values[0], ok, pynvml.NVML_VALUE_TYPE_DOUBLE, "dVal", 2.5e9)
    _set_entry(values[1], ok, pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, "uiVal", 4_000_000_000)
    _set_entry(values[2], ok, pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG, "ulVal", 2**40)
    _set_entry(values[3], ok, pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, "ullVal", 2**63 + 1)
    _set_entry(values[4], ok, pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG, "sllVal", -(2**40))
    _set_entry(values[5], ok, pynvml.NVML_VALUE_TYPE_SIGNED_INT, "siVal", -7)
    _set_entry(values[6], ok, pynvml.NVML_VALUE_TYPE_UNSIGNED_SHORT, "usVal", 65535)
    _set_entry(values[7], pynvml.NVML_ERROR_NOT_SUPPORTED)
    _set_entry(values[8], pynvml.NVML_ERROR_TIMEOUT)
    out: list[Sample] = []
    failed: set[str] = set()
    assert batch.decode(values, out, failed) is False
    assert failed == {"NVML_ERROR_TIMEOUT"}
    expected = [
        read.sample(float(field_value(value) or 0.0), ("0", "GPU-x", "NVIDIA H200"))
        for read, value in zip(reads[:7], values, strict=False)
    ]
    assert out == expected
    raws = (2.5e9, 4e9, 2.0**40, float(2**63 + 1), -(2.0**40), -7.0, 65535.0)
    assert [s.value for s in out] == [raw * 1e-9 for raw in raws]
    again: list[Sample] = []
    batch.decode(values, again, failed)
    assert all(a is b for a, b in zip(again, out, strict=True))  # unchanged: same objects
    values[0].value.dVal = 3.5e9
    values[8].nvmlReturn = pynvml.NVML_ERROR_GPU_IS_LOST
    changed: list[Sample] = []
    with pytest.raises(GpuLostError):
        batch.decode(values, changed, set())
    assert changed[0].value == 3.5


def test_nvlink_speed_is_reread_on_refresh_and_after_a_link_changes_state(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("h200x8")
    source = open_source(gpm=False, xid=False, nvlink_per_link=True)
    labels = _labels(fake, 0)
    speed_field = pynvml.NVML_FI_DEV_NVLINK_GET_SPEED

    def speed(collection: Collection, link: str) -> float:
        return _value(collection, g.NVLINK_SPEED, *labels, link)

    assert speed(source.collect(clock()), "0") == 26562e6
    fake.set_field(0, speed_field, 25000, scope=0)
    for _ in range(STATIC_REFRESH_CYCLES - 1):  # repeated from the last read, every sample
        clock.advance(1.0)
        assert speed(source.collect(clock()), "0") == 26562e6
    clock.advance(1.0)
    assert speed(source.collect(clock()), "0") == 25000e6
    fake.set_field(0, pynvml.NVML_FI_DEV_NVLINK_GET_STATE, 0, scope=5)  # link 5 goes down
    fake.set_field(0, speed_field, 0, scope=5)
    clock.advance(1.0)
    collection = source.collect(clock())
    assert _value(collection, g.NVLINK_LINK_UP, *labels, "5") == 0.0  # state: every sample
    assert speed(collection, "5") == 26562e6
    clock.advance(1.0)
    assert speed(source.collect(clock()), "5") == 0.0  # the sample after the state change


def test_peaks_from_the_spec_table_and_override(install_fake: Install, open_source: Open) -> None:
    fake = install_fake("h200x8")
    labels = _labels(fake, 0)
    collection = open_source().collect(START)
    assert _value(collection, g.PEAK_FLOPS, *labels, "bf16") == 989.4e12
    assert _value(collection, g.PEAK_MEMORY_BANDWIDTH, *labels) == 4.8e12
    assert _value(collection, g.PEAK_NVLINK_BANDWIDTH, *labels) == 900e9
    assert _value(collection, g.GPU_MEMORY_TOTAL, *labels) == 143771 * MIB
    custom = with_overrides(GPUS["h200"], peak_flops={"bf16": 800e12}, hbm_bandwidth=4.3e12)
    overridden = open_source(gpu_spec=custom, xid=False).collect(START)
    assert _value(overridden, g.PEAK_FLOPS, *labels, "bf16") == 800e12
    assert _value(overridden, g.PEAK_MEMORY_BANDWIDTH, *labels) == 4.3e12


def test_a100_has_twelve_links_and_no_gpm(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("a100")
    source = open_source(nvlink_per_link=True)
    source.collect(clock())
    clock.advance(1.0)
    collection = source.collect(clock())
    links = {s.labels[3] for s in collection.samples if s.metric == g.NVLINK_LINK_DATA_BYTES.name}
    assert links == {str(i) for i in range(12)}
    assert _value(collection, g.NVLINK_LINKS, "0", fake.devices[0].uuid, fake.devices[0].name) == 12
    assert g.GPM_SM_ACTIVE.name not in _metrics_of(collection, "0")
    assert collection.errors == ()
    assert not source.gpm_enabled
    assert "nvmlGpmSampleGet" not in fake.calls()
    assert _value(collection, g.PEAK_FLOPS, *_labels(fake, 0), "bf16") == 312e12


def test_minimal_device_emits_what_it_has_without_errors(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("minimal")
    source = open_source(processes=True)
    source.collect(clock())
    clock.advance(3.0)
    collection = source.collect(clock())
    assert collection.errors == ()
    assert _metrics_of(collection, "0") == {
        g.GPU_INFO.name,
        g.GPU_UP.name,
        g.GPU_MEMORY_TOTAL.name,
        g.GPU_MEMORY_USED.name,
        g.GPU_UTILIZATION_NAIVE.name,
        g.GPU_MEMORY_UTILIZATION_NAIVE.name,
        g.GPU_POWER.name,
        g.GPU_ENERGY.name,
        g.GPU_TEMPERATURE.name,
        g.GPU_CLOCK.name,
    }
    labels = _labels(fake, 0)
    v1 = source.collect(clock())
    assert _value(v1, g.GPU_MEMORY_USED, *labels) == int(0.9 * (15360 - 254) * MIB) + 254 * MIB


def test_mig_devices_are_labelled_and_never_crash(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("mig")
    source = open_source(processes=True)
    keys = [d.key for d in source.devices]
    assert keys == ["0", "0/mig-0", "0/mig-1", "0/mig-2"]
    source.collect(clock())
    clock.advance(1.0)
    collection = source.collect(clock())
    assert collection.errors == ()
    infos = {s.labels[0]: s.labels for s in collection.samples if s.metric == g.GPU_INFO.name}
    assert infos["0"][-1] == "enabled"
    mig = fake.mig_devices(0)[2]
    assert infos["0/mig-2"] == (
        "0/mig-2", mig.uuid, "NVIDIA H100 80GB HBM3 MIG 1g.10gb",
        "00000000:18:00.0", "570.124.06", "12.8", "1g.10gb",
    )  # fmt: skip
    assert _metrics_of(collection, "0/mig-2") == {
        g.GPU_INFO.name,
        g.GPU_UP.name,
        g.GPU_MEMORY_TOTAL.name,
        g.GPU_MEMORY_USED.name,
        g.GPU_MEMORY_RESERVED.name,
        g.GPU_PROCESS_MEMORY.name,
        *(spec.name for spec in mig_catalog.ALL),  # GPM per GPU instance (test_gpm_mig.py)
    }
    assert g.GPU_UTILIZATION_NAIVE.name not in _metrics_of(collection, "0")
    assert g.GPU_PROCESS_MEMORY.name not in _metrics_of(collection, "0")  # listed per MIG device
    assert g.GPM_TENSOR_ACTIVE.name in _metrics_of(collection, "0")
    mig_labels = ("0/mig-2", mig.uuid, mig.name)
    assert _value(collection, g.GPU_MEMORY_TOTAL, *mig_labels) == 9856 * MIB


# --- rates from the workload script --------------------------------------------------------


def test_counter_rates_inside_one_phase(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("h100x8", workload=RATES)
    source = open_source(gpm=False, nvlink_per_link=True)
    clock.set(START + 2.0)
    first = source.collect(clock())
    clock.set(START + 7.0)
    second = source.collect(clock())
    labels = _labels(fake, 0)
    for link in ("0", "9", "17"):
        assert _rate(first, second, 5.0, g.NVLINK_LINK_DATA_BYTES, *labels, link, "tx") == 4 * GIB
        assert _rate(first, second, 5.0, g.NVLINK_LINK_DATA_BYTES, *labels, link, "rx") == 2 * GIB
    assert _rate(first, second, 5.0, g.NVLINK_DATA_BYTES, *labels, "tx") == 18 * 4 * GIB
    assert _rate(first, second, 5.0, g.NVLINK_DATA_BYTES, *labels, "rx") == 18 * 2 * GIB
    raw_tx = _rate(first, second, 5.0, g.NVLINK_RAW_BYTES, *labels, "3", "tx")
    assert raw_tx == 4 * GIB * (1 + PHASE_A.nvlink_raw_overhead)
    assert _rate(first, second, 5.0, g.GPU_PCIE_BYTES, *labels, "tx") == 64 * MIB
    assert _rate(first, second, 5.0, g.GPU_PCIE_BYTES, *labels, "rx") == 128 * MIB
    assert _rate(first, second, 5.0, g.GPU_ENERGY, *labels) == pytest.approx(300.0)
    assert _rate(first, second, 5.0, g.GPU_THROTTLE_TIME, *labels, "sw_power_cap") == 1.0
    assert _value(second, g.GPU_ENERGY, *labels) == pytest.approx(300.0 * 7)


def test_counter_rates_across_a_phase_boundary_and_per_gpu(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("h100x8", workload=RATES)
    source = open_source(gpm=False)
    clock.set(START + 8.0)
    first = source.collect(clock())
    clock.set(START + 14.0)  # 2 s of phase a, 4 s of phase b
    second = source.collect(clock())
    gpu0, gpu1 = _labels(fake, 0), _labels(fake, 1)
    energy0 = _rate(first, second, 6.0, g.GPU_ENERGY, *gpu0)
    assert energy0 == pytest.approx((300.0 * 2 + 500.0 * 4) / 6)
    energy1 = _rate(first, second, 6.0, g.GPU_ENERGY, *gpu1)
    assert energy1 == pytest.approx((300.0 * 2 + 200.0 * 4) / 6)
    tx1 = _rate(first, second, 6.0, g.NVLINK_DATA_BYTES, *gpu1, "tx")
    assert tx1 == pytest.approx(18 * (4 * GIB * 2 + 8 * GIB * 4) / 6)
    rx0 = _rate(first, second, 6.0, g.NVLINK_DATA_BYTES, *gpu0, "rx")
    assert rx0 == pytest.approx(18 * (2 * GIB * 2 + 3 * GIB * 4) / 6)
    pcie = _rate(first, second, 6.0, g.GPU_PCIE_BYTES, *gpu0, "rx")
    assert pcie == pytest.approx((128 * MIB * 2 + 16 * MIB * 4) / 6)
    assert _value(second, g.GPU_POWER, *gpu1) == 200.0


# --- faults -----------------------------------------------------------------------------------


def test_lost_gpu_keeps_only_gpu_up_and_the_others_flow(
    install_fake: Install, open_source: Open, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    fake = install_fake("h100x8")
    source = open_source()
    source.collect(clock())
    clock.advance(1.0)
    before = source.collect(clock())  # GPM has a window from the second sample on
    fake.lose_gpu(3)
    for _ in range(3):
        clock.advance(1.0)
        collection = source.collect(clock())
        lost = [s for s in collection.samples if s.labels[0] == "3"]
        assert [(s.metric, s.value) for s in lost] == [(g.GPU_UP.name, 0.0)]
        assert lost[0].labels == _labels(fake, 3)
        assert collection.errors == (LOST,)
        for gpu in (0, 1, 2, 4, 7):
            assert _metrics_of(collection, str(gpu)) == _metrics_of(before, str(gpu))
    assert source.errors_total == {"NVML_ERROR_GPU_IS_LOST": 3}
    assert sum("is lost" in r.getMessage() for r in caplog.records) == 1


def test_lost_mig_gpu_takes_its_mig_devices_down(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("mig")
    source = open_source()
    fake.lose_gpu(0)
    collection = source.collect(clock())
    assert {(s.labels[0], s.metric, s.value) for s in collection.samples} == {
        (key, g.GPU_UP.name, 0.0) for key in ("0", "0/mig-0", "0/mig-1", "0/mig-2")
    }
    assert collection.errors == (LOST,)


def test_gpu_lost_before_start(install_fake: Install, open_source: Open) -> None:
    fake = install_fake("h100x8")
    fake.lose_gpu(5)
    collection = open_source().collect(START)
    assert [s.metric for s in collection.samples if s.labels[0] == "5"] == [g.GPU_UP.name]
    assert collection.errors == (LOST,)


def test_not_supported_field_is_absent_without_error(
    install_fake: Install, open_source: Open
) -> None:
    fake = install_fake("h100x8")
    fake.not_supported(pynvml.NVML_FI_DEV_MEMORY_TEMP)
    fake.not_supported(pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_RAW_TX, gpu=2)
    collection = open_source(nvlink_per_link=True).collect(START)
    sensors = {s.labels[3] for s in collection.samples if s.metric == g.GPU_TEMPERATURE.name}
    assert sensors == {"gpu"}
    raw_tx = {
        s.labels[0]
        for s in collection.samples
        if s.metric == g.NVLINK_RAW_BYTES.name and s.labels[4] == "tx"
    }
    assert raw_tx == {str(i) for i in range(8)} - {"2"}
    assert collection.errors == ()


def test_failed_calls_are_counted_by_code_name(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("h100x8")
    source = open_source()
    fake.fail("nvmlDeviceGetUtilizationRates", pynvml.NVML_ERROR_TIMEOUT, gpu=1)
    fake.fail("nvmlDeviceGetClockInfo", pynvml.NVML_ERROR_UNKNOWN, gpu=2)
    collection = source.collect(clock())
    assert sorted(collection.errors) == sorted(["NVML_ERROR_TIMEOUT"] + ["NVML_ERROR_UNKNOWN"] * 3)
    assert g.GPU_UTILIZATION_NAIVE.name not in _metrics_of(collection, "1")
    assert g.GPU_UTILIZATION_NAIVE.name in _metrics_of(collection, "0")
    assert g.GPU_CLOCK.name not in _metrics_of(collection, "2")
    assert _value(collection, g.GPU_UP, *_labels(fake, 1)) == 1.0
    fake.clear_failures()
    clock.advance(1.0)
    assert source.collect(clock()).errors == ()
    assert source.errors_total == {"NVML_ERROR_TIMEOUT": 1, "NVML_ERROR_UNKNOWN": 3}


def test_field_values_call_failing_drops_only_the_fields(
    install_fake: Install, open_source: Open
) -> None:
    fake = install_fake("a100")
    source = open_source()
    fake.fail("nvmlDeviceGetFieldValues", pynvml.NVML_ERROR_TIMEOUT)
    collection = source.collect(START)
    assert collection.errors == ("NVML_ERROR_TIMEOUT",)
    metrics = _metrics_of(collection, "0")
    assert g.GPU_POWER.name not in metrics
    assert {g.GPU_MEMORY_USED.name, g.GPU_CLOCK.name, g.GPU_TEMPERATURE.name} <= metrics


def test_slow_calls(install_fake: Install, open_source: Open) -> None:
    fake = install_fake("a100")
    fake.slow_calls(0.0005)
    collection = open_source(gpm=False, xid=False).collect(START)
    assert _value(collection, g.GPU_UP, *_labels(fake, 0)) == 1.0


def test_library_missing_raises_unavailable_with_a_hint(install_fake: Install) -> None:
    install_fake("h100x8", library_missing=True)
    with pytest.raises(UnavailableError) as raised:
        NvmlSource()
    assert "libnvidia-ml.so.1" in raised.value.reason
    assert "--fake-gpus" in raised.value.hint
    assert "driver" in raised.value.hint


def test_init_failure_is_unavailable(install_fake: Install) -> None:
    fake = install_fake("h100x8")
    fake.fail("nvmlInitWithFlags", pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    with pytest.raises(UnavailableError, match="driver is not loaded"):
        NvmlSource()


def test_process_memory_with_names_from_proc(
    install_fake: Install, open_source: Open, tmp_path: Path
) -> None:
    fake = install_fake("h100x8")
    fake.set_processes(0, [(1234, 40 * GIB), (99, 2 * GIB)])
    (tmp_path / "1234").mkdir()
    (tmp_path / "1234" / "comm").write_text("vllm\n")
    collection = open_source(processes=True, proc_root=tmp_path).collect(START)
    labels = _labels(fake, 0)
    assert _value(collection, g.GPU_PROCESS_MEMORY, *labels, "1234", "vllm") == 40 * GIB
    assert _value(collection, g.GPU_PROCESS_MEMORY, *labels, "99", "unknown") == 2 * GIB
    assert g.GPU_PROCESS_MEMORY.name not in _metrics_of(open_source().collect(START), "0")


def test_close_shuts_nvml_down(install_fake: Install, open_source: Open) -> None:
    fake = install_fake("h100x8")
    source = open_source()
    assert fake.initialized
    source.close()
    source.close()
    assert not fake.initialized
    assert fake.calls()["nvmlGpmSampleFree"] == 16
    with pytest.raises(UnavailableError, match="closed"):
        source.collect(START)


def test_link_count_failing_at_start_falls_back_to_the_spec_table(
    install_fake: Install, open_source: Open
) -> None:
    fake = install_fake("h100x8")
    fake.fail("nvmlDeviceGetFieldValues", pynvml.NVML_ERROR_TIMEOUT)
    source = open_source(gpm=False, xid=False)
    assert {d.links for d in source.devices} == {18}
    fake.clear_failures()
    collection = source.collect(START)
    assert collection.errors == ("NVML_ERROR_TIMEOUT",) * 8  # from the start, reported once
    up = {s.value for s in collection.samples if s.metric == g.NVLINK_LINKS_UP.name}
    assert up == {18.0}


def test_enumeration_failure_is_unavailable(install_fake: Install) -> None:
    fake = install_fake("h100x8")
    fake.fail("nvmlDeviceGetCount_v2", pynvml.NVML_ERROR_NO_PERMISSION)
    with pytest.raises(UnavailableError, match="NVML_ERROR_NO_PERMISSION"):
        NvmlSource()
    assert not fake.initialized


@pytest.mark.gpu
def test_real_driver() -> None:
    """On a machine with an NVIDIA driver: the source reads real GPUs without errors."""
    library, cache = pynvml.nvmlLib, dict(pynvml._nvmlGetFunctionPointer_cache)
    try:
        try:
            source = NvmlSource(xid_timeout_ms=50)
        except UnavailableError as exc:
            pytest.skip(f"no NVIDIA driver here: {exc.reason}")
        try:
            source.collect(time.time())
            time.sleep(0.2)  # GPM needs >= 100 ms between its two samples
            collection = source.collect(time.time())
        finally:
            source.close()
        up = [s for s in collection.samples if s.metric == g.GPU_UP.name]
        assert up
        assert all(s.value == 1.0 for s in up)
        names = {s.metric for s in collection.samples}
        assert {g.GPU_POWER.name, g.GPU_ENERGY.name, g.GPU_MEMORY_USED.name} <= names
        assert collection.errors == (), collection.errors
    finally:  # leave pynvml unloaded, as the other tests expect
        pynvml.nvmlLib = library
        pynvml._nvmlGetFunctionPointer_cache.clear()
        pynvml._nvmlGetFunctionPointer_cache.update(cache)
