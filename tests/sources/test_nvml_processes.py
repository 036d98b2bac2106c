"""NvmlProcessReader on FakeNvml: the real pynvml wrappers for the compute-process list and
nvmlDeviceGetProcessUtilization, against hand-computed values."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from gpumetrics.sources.nvml_processes import NvmlProcessReader
from gpumetrics.sources.pods.model import GpuProcesses, ProcessUse
from gpumetrics.testing import FakeNvml, ManualClock
from gpumetrics.testing.fakenvml import codes


@pytest.fixture
def reader(install_fake: Callable[..., FakeNvml]) -> Iterator[Callable[[], NvmlProcessReader]]:
    made: list[NvmlProcessReader] = []

    def make() -> NvmlProcessReader:
        made.append(NvmlProcessReader())
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_per_process_levels_and_their_mean(
    install_fake: Callable[..., FakeNvml],
    reader: Callable[[], NvmlProcessReader],
    clock: ManualClock,
) -> None:
    fake = install_fake("h100x8")
    fake.set_processes(0, [(101, 8 << 30), (102, 2 << 30)])
    # Two samples of pid 101 in the driver's buffer: the reader takes their mean.
    fake.set_process_utilization(0, [(101, 30, 10), (101, 50, 20), (102, 15, 5)])
    fake.set_processes(1, [])
    fake.set_process_utilization(1, [])
    r = reader()
    errors: list[str] = []
    gpus = {g.gpu_uuid: g for g in r.read(errors)}
    uuids = [d.uuid for d in r.devices]
    assert errors == []
    assert gpus[uuids[0]] == GpuProcesses(
        uuids[0], (101, 102), (ProcessUse(101, 0.40, 0.15), ProcessUse(102, 0.15, 0.05))
    )
    assert gpus[uuids[1]] == GpuProcesses(uuids[1], (), ())
    # Nothing newer than the last sample seen: the driver says NOT_FOUND, nobody ran.
    assert next(g for g in r.read(errors) if g.gpu_uuid == uuids[0]).usage == ()
    clock.advance(1.0)
    assert next(g for g in r.read(errors) if g.gpu_uuid == uuids[0]).usage == (
        ProcessUse(101, 0.40, 0.15),
        ProcessUse(102, 0.15, 0.05),
    )
    assert errors == []


def test_default_processes_follow_the_workload(
    install_fake: Callable[..., FakeNvml], reader: Callable[[], NvmlProcessReader]
) -> None:
    fake = install_fake("h100x8")
    r = reader()
    gpu = r.read([])[0]
    (pid,) = gpu.pids
    rates = fake.profile.workload.rates_at(0, 0.0)
    assert gpu.usage == (
        ProcessUse(pid, round(rates.sm_active * 100) / 100, round(rates.dram_active * 100) / 100),
    )


def test_mig_devices_list_processes_without_utilization(
    install_fake: Callable[..., FakeNvml], reader: Callable[[], NvmlProcessReader]
) -> None:
    install_fake("mig")
    r = reader()
    gpus = r.read([])
    mig = [g for g in gpus if g.gpu_uuid.startswith("MIG-")]
    assert mig
    assert all(g.usage is None for g in gpus)  # the parent is in MIG mode too
    assert all(len(g.pids) == 1 for g in mig)


def test_failures_are_named_and_not_supported_is_remembered(
    install_fake: Callable[..., FakeNvml], reader: Callable[[], NvmlProcessReader]
) -> None:
    fake = install_fake("h100x8")
    r = reader()
    fake.fail("nvmlDeviceGetProcessUtilization", codes.TIMEOUT, gpu=0)
    errors: list[str] = []
    gpus = r.read(errors)
    assert errors == ["NVML_ERROR_TIMEOUT"]
    assert gpus[0].usage is None
    assert gpus[1].usage is not None
    fake.fail("nvmlDeviceGetProcessUtilization", codes.NOT_SUPPORTED, gpu=0)
    r.read([])
    fake.clear_failures()
    before = fake.calls()["nvmlDeviceGetProcessUtilization"]
    assert r.read([])[0].usage is None
    # Not asked again on GPU 0 once NOT_SUPPORTED; the 7 others are, once each (the clock
    # stood still, so pynvml's size query is answered NOT_FOUND: no newer sample).
    assert fake.calls()["nvmlDeviceGetProcessUtilization"] - before == 7


def test_a_lost_gpu_is_reported_and_the_others_flow(
    install_fake: Callable[..., FakeNvml], reader: Callable[[], NvmlProcessReader]
) -> None:
    fake = install_fake("h100x8")
    r = reader()
    fake.lose_gpu(3)
    errors: list[str] = []
    gpus = r.read(errors)
    assert "NVML_ERROR_GPU_IS_LOST" in errors
    assert len(gpus) == 7
