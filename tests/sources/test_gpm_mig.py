"""GPM per MIG GPU instance (nvmlGpmMigSampleGet) through the NVML source: values against
hand-computed time averages per instance, labels, and degrading to "not supported"."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pynvml
import pytest

from gpumetrics.catalog import gpu as g
from gpumetrics.catalog import mig as m
from gpumetrics.samples import Collection
from gpumetrics.sources.gpm import MIG_GPM_METRICS, GpmCollector
from gpumetrics.sources.nvml import NvmlSource
from gpumetrics.sources.nvml_devices import _instance_profile
from gpumetrics.sources.nvml_names import NvmlNames
from gpumetrics.testing import FakeNvml, GpuRates, ManualClock, Phase, Workload

from .conftest import START

Install = Callable[..., FakeNvml]
Open = Callable[..., NvmlSource]

A = GpuRates(
    power_watts=300.0,
    sm_active=0.8,
    sm_occupancy=0.4,
    tensor_active=0.6,
    dram_active=0.2,
    fp16_active=0.3,
    utilization_gpu=1.0,
)
B = GpuRates(power_watts=200.0, sm_active=0.2, tensor_active=0.1, dram_active=0.9)
WORKLOAD = Workload((Phase("a", 10.0, A), Phase("b", 20.0, B)))
#: The `mig` profile's instances: (key, GPU instance id, profile, GPM activity x parent).
INSTANCES = (("0/mig-0", "1", "3g.40gb", 1.0), ("0/mig-1", "2", "3g.40gb", 0.5))
INSTANCES += (("0/mig-2", "9", "1g.10gb", 0.25),)
MIG_NAMES = {spec.name for spec in m.ALL}


def _mig(collection: Collection) -> dict[tuple[str, ...], float]:
    """MIG samples: (metric, *labels) -> value."""
    out = {}
    for sample in collection.samples:
        if sample.metric in MIG_NAMES:
            assert isinstance(sample.value, float)
            out[(sample.metric, *sample.labels)] = sample.value
    return out


def test_each_instance_reports_its_own_time_average(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("mig", workload=WORKLOAD)
    source = open_source()
    clock.set(START + 2.0)
    assert _mig(source.collect(clock())) == {}  # no window yet
    clock.set(START + 7.0)  # [2, 7]: inside phase a
    inside = _mig(source.collect(clock()))
    clock.set(START + 14.0)  # [7, 14]: 3 s of a, 4 s of b
    across = _mig(source.collect(clock()))
    children = fake.mig_devices(0)
    assert len(inside) == len(across) == 3 * len(MIG_GPM_METRICS)
    for child, (key, gi, profile, activity) in zip(children, INSTANCES, strict=True):
        labels = (key, child.uuid, child.name, gi, profile)
        assert child.uuid.startswith("MIG-")
        approx = pytest.approx
        assert inside[(m.MIG_SM_ACTIVE.name, *labels)] == approx(0.8 * activity)
        assert inside[(m.MIG_TENSOR_ACTIVE.name, *labels)] == approx(0.6 * activity)
        assert inside[(m.MIG_GRAPHICS_ACTIVE.name, *labels)] == approx(1.0 * activity)
        assert inside[(m.MIG_PIPE_ACTIVE.name, *labels, "fp16")] == approx(0.3 * activity)
        assert inside[(m.MIG_PIPE_ACTIVE.name, *labels, "fp64")] == 0.0
        sm = (0.8 * 3 + 0.2 * 4) / 7 * activity
        dram = (0.2 * 3 + 0.9 * 4) / 7 * activity
        occupancy = (0.4 * 3 + 0.0 * 4) / 7 * activity
        assert across[(m.MIG_SM_ACTIVE.name, *labels)] == approx(sm)
        assert across[(m.MIG_DRAM_ACTIVE.name, *labels)] == approx(dram)
        assert across[(m.MIG_SM_OCCUPANCY.name, *labels)] == approx(occupancy)
    clock.advance(1.0)
    whole = {s.metric: s.value for s in source.collect(clock()).samples if s.labels[0] == "0"}
    assert whole[g.GPM_SM_ACTIVE.name] == pytest.approx(0.2)  # the whole GPU, phase b
    assert fake.calls()["nvmlGpmMigSampleGet"] == 3 * 4


def test_a_gpu_without_mig_gpm_degrades_without_breaking_the_others(
    install_fake: Install, open_source: Open, clock: ManualClock
) -> None:
    fake = install_fake("migx2", workload=WORKLOAD)
    fake.fail("nvmlGpmMigSampleGet", pynvml.NVML_ERROR_NOT_SUPPORTED, gpu=1)
    source = open_source()
    for _ in range(3):
        clock.advance(1.0)
        collection = source.collect(clock())
    assert collection.errors == ()
    keys = {key for _, key, *_ in _mig(collection)}
    assert keys == {"0/mig-0", "0/mig-1", "0/mig-2"}
    assert source.gpm_unsupported == ("1/mig-0", "1/mig-1", "1/mig-2")
    whole = {s.metric for s in collection.samples if s.labels[0] == "1"}
    assert g.GPM_SM_ACTIVE.name in whole  # GPU 1 itself still has GPM
    calls = fake.calls()["nvmlGpmMigSampleGet"]
    clock.advance(1.0)
    source.collect(clock())
    assert fake.calls()["nvmlGpmMigSampleGet"] == calls + 3  # GPU 1's instances: dropped


def test_a_pynvml_without_mig_sampling_adds_no_instance(
    install_fake: Install, clock: ManualClock
) -> None:
    names = NvmlNames(SimpleNamespace())
    assert names.functions("nvmlGpmMigSampleGet", what="MIG GPM") == ()
    assert [missing.what for missing in names.missing] == ["MIG GPM"]
    install_fake("mig")
    pynvml.nvmlInit()
    try:
        collector = GpmCollector(mig_sample_get=())
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        collector.add("0/mig-0", handle, [], gpu_instance=1)
        assert collector.keys() == ()
        assert collector.unsupported == ("0/mig-0",)
        assert collector.collect("0/mig-0", ("0/mig-0",), clock(), []) == []
    finally:
        pynvml.nvmlShutdown()


def test_profile_comes_from_the_gpu_instance_profile_info(install_fake: Install) -> None:
    install_fake("mig")
    pynvml.nvmlInit()
    try:
        parent = pynvml.nvmlDeviceGetHandleByIndex(0)
        errors: list[str] = []
        assert _instance_profile(parent, 9, errors) == "1g.10gb"
        assert _instance_profile(parent, 2, errors) == "3g.40gb"
        assert errors == []
        assert _instance_profile(parent, 5, errors) is None  # no such instance: named
        assert errors == ["NVML_ERROR_NOT_FOUND"]
    finally:
        pynvml.nvmlShutdown()
