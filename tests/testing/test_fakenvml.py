"""FakeNvml through pynvml's real wrappers: profiles, fields, memory, GPM, events, faults."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import pynvml
import pytest

from gpumetrics.errors import ConfigError
from gpumetrics.testing import (
    DEFAULT_WORKLOAD,
    PROFILES,
    FakeNvml,
    GpuRates,
    ManualClock,
    Phase,
    Workload,
    parse_fake_gpus,
)
from gpumetrics.testing.workloads import H200
from gpumetrics.units import GIB, MIB

ALL_LINKS = 0xFFFFFFFF


def _pynvml_globals() -> tuple[object, dict[str, object], int, object]:
    return (
        pynvml.nvmlLib,
        dict(pynvml._nvmlGetFunctionPointer_cache),
        pynvml._nvmlLib_refcount,
        pynvml.CDLL,
    )


@pytest.fixture(autouse=True)
def _pynvml_restored() -> Iterator[None]:
    """Every test leaves pynvml exactly as it found it."""
    before = _pynvml_globals()
    yield
    assert _pynvml_globals() == before


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000.0)


@pytest.fixture
def fake(clock: ManualClock) -> Iterator[FakeNvml]:
    with FakeNvml("h100x8", clock=clock) as installed:
        pynvml.nvmlInit()
        yield installed
        pynvml.nvmlShutdown()


def _fields(handle: object, *requests: int | tuple[int, int]) -> list[tuple[int, int]]:
    """(nvmlReturn, value) per requested field, read through pynvml."""
    out = []
    for value in pynvml.nvmlDeviceGetFieldValues(handle, list(requests)):
        member = {
            pynvml.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
            pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
        }.get(value.valueType, "ullVal")
        out.append((value.nvmlReturn, getattr(value.value, member)))
    return out


# --- profiles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "count", "name", "links", "gpm"),
    [
        ("h100x8", 8, "NVIDIA H100 80GB HBM3", 18, True),
        ("h200x8", 8, "NVIDIA H200", 18, True),
        ("a100", 1, "NVIDIA A100-SXM4-80GB", 12, False),
        ("a100x4", 4, "NVIDIA A100-SXM4-80GB", 12, False),
        ("mig", 1, "NVIDIA H100 80GB HBM3", 18, True),
        ("minimal", 1, "Tesla T4", 0, False),
        ("H200X2", 2, "NVIDIA H200", 18, True),
    ],
)
def test_profiles_through_pynvml(
    clock: ManualClock, spec: str, count: int, name: str, links: int, gpm: bool
) -> None:
    with FakeNvml(spec, clock=clock):
        pynvml.nvmlInit()
        try:
            assert pynvml.nvmlDeviceGetCount() == count
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            assert {pynvml.nvmlDeviceGetName(h) for h in handles} == {name}
            uuids = [pynvml.nvmlDeviceGetUUID(h) for h in handles]
            assert len(set(uuids)) == count
            assert all(u.startswith("GPU-") for u in uuids)
            buses = {pynvml.nvmlDeviceGetPciInfo_v3(h).busId for h in handles}
            assert len(buses) == count
            support = pynvml.nvmlGpmQueryDeviceSupport(handles[0]).isSupportedDevice
            assert bool(support) is gpm
            power, link_count = _fields(
                handles[0], pynvml.NVML_FI_DEV_POWER_INSTANT, pynvml.NVML_FI_DEV_NVLINK_LINK_COUNT
            )
            assert power[0] == pynvml.NVML_SUCCESS
            if links:
                assert link_count == (pynvml.NVML_SUCCESS, links)
            else:
                assert link_count[0] == pynvml.NVML_ERROR_NOT_SUPPORTED
        finally:
            pynvml.nvmlShutdown()


def test_named_profiles_and_spec_errors() -> None:
    assert set(PROFILES) == {"h100x8", "h200x8", "a100", "mig", "minimal"}
    assert len(parse_fake_gpus("h100").devices) == 8
    for bad in ("v100", "h100x0", "h100x65", "h100x", ""):
        with pytest.raises(ConfigError, match="--fake-gpus"):
            parse_fake_gpus(bad)


def test_h200_is_the_measured_board(clock: ManualClock) -> None:
    """What NVML reported on a real H200 SXM 141GB (tests/data/h200/, nvidia-smi -q)."""
    with FakeNvml("h200x2", clock=clock, workload=H200) as fake:
        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(1)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
            assert memory.total == 150_754_820_096
            assert memory.reserved == 644_939_776
            assert memory.used == 0  # idle, no context
            assert pynvml.nvmlDeviceGetComputeRunningProcesses(handle) == []
            assert pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) == 700_000
            maxima = [
                pynvml.nvmlDeviceGetMaxClockInfo(handle, c)
                for c in (pynvml.NVML_CLOCK_GRAPHICS, pynvml.NVML_CLOCK_SM, pynvml.NVML_CLOCK_MEM)
            ]
            assert maxima == [1980, 1980, 3201]
            assert pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM) == 345
            pci = pynvml.nvmlDeviceGetPciInfo_v3(handle)
            assert (pci.pciDeviceId, pci.pciSubSystemId) == (0x233510DE, 0x18BF10DE)
            assert pynvml.nvmlSystemGetDriverVersion() == "580.159.04"
            assert pynvml.nvmlSystemGetCudaDriverVersion_v2() == 13000
            clock.advance(10.0)  # the matmul: power-capped
            assert pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM) == 1470
            assert pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle) == (
                pynvml.nvmlClocksEventReasonSwPowerCap
            )
            assert pynvml.nvmlDeviceGetPowerUsage(handle) == 688_240
            (process,) = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            assert process.usedGpuMemory == 1_194_131_456
            assert fake.profile.devices[0].nvlink_links == 18
        finally:
            pynvml.nvmlShutdown()


def test_system_queries(fake: FakeNvml) -> None:
    assert pynvml.nvmlSystemGetDriverVersion() == fake.profile.driver_version
    assert pynvml.nvmlSystemGetCudaDriverVersion_v2() == fake.profile.cuda_version
    handle = pynvml.nvmlDeviceGetHandleByUUID(fake.devices[5].uuid)
    assert pynvml.nvmlDeviceGetIndex(handle) == 5


def test_calls_before_init_and_unknown_functions(clock: ManualClock) -> None:
    with FakeNvml("a100", clock=clock):
        with pytest.raises(pynvml.NVMLError_Uninitialized):
            pynvml.nvmlDeviceGetCount()
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        with pytest.raises(pynvml.NVMLError_FunctionNotFound):
            pynvml.nvmlDeviceGetNvLinkState(handle, 0)
        with pytest.raises(pynvml.NVMLError_InvalidArgument):
            pynvml.nvmlDeviceGetHandleByIndex(1)
        pynvml.nvmlShutdown()
        with pytest.raises(pynvml.NVMLError_Uninitialized):
            pynvml.nvmlShutdown()


def test_install_restores_pynvml_state(clock: ManualClock) -> None:
    before = _pynvml_globals()
    fake = FakeNvml("a100", clock=clock).install()
    with pytest.raises(RuntimeError, match="already installed"):
        fake.install()
    assert pynvml.nvmlLib is not None
    pynvml.nvmlInit()
    pynvml.nvmlDeviceGetCount()
    assert "nvmlDeviceGetCount_v2" in pynvml._nvmlGetFunctionPointer_cache
    fake.uninstall()
    fake.uninstall()  # idempotent
    assert _pynvml_globals() == before
    assert not fake.installed


# --- fields and memory ------------------------------------------------------------------------


def test_scoped_nvlink_fields_integrate_the_workload(fake: FakeNvml, clock: ManualClock) -> None:
    handle = pynvml.nvmlDeviceGetHandleByIndex(2)
    clock.advance(12.0)  # 10 s idle + 2 s prefill (2 GiB/s per link and direction)
    tx = pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX
    raw_rx = pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_RAW_RX
    link3, link17, total, raw3 = _fields(handle, (tx, 3), (tx, 17), (tx, ALL_LINKS), (raw_rx, 3))
    expected_kib = 2 * GIB * 2 // 1024
    assert link3 == (pynvml.NVML_SUCCESS, expected_kib)
    assert link17 == (pynvml.NVML_SUCCESS, expected_kib)
    assert total == (pynvml.NVML_SUCCESS, 18 * expected_kib)
    assert raw3 == (pynvml.NVML_SUCCESS, expected_kib * 17 // 16)
    bad_link = _fields(handle, (tx, 18), pynvml.NVML_FI_DEV_POWER_INSTANT)[0]
    assert bad_link[0] == pynvml.NVML_ERROR_INVALID_ARGUMENT


def test_power_energy_pcie_and_link_fields(fake: FakeNvml, clock: ManualClock) -> None:
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    clock.advance(12.0)
    power, energy, pcie_rx, state, speed, unknown = _fields(
        handle,
        pynvml.NVML_FI_DEV_POWER_INSTANT,
        pynvml.NVML_FI_DEV_ENERGY,
        pynvml.NVML_FI_DEV_PCIE_COUNT_RX_BYTES,
        (pynvml.NVML_FI_DEV_NVLINK_GET_STATE, 4),
        (pynvml.NVML_FI_DEV_NVLINK_GET_SPEED, 4),
        9999,
    )
    assert power == (pynvml.NVML_SUCCESS, 620_000)  # mW, prefill
    assert energy == (pynvml.NVML_SUCCESS, (90 * 10 + 620 * 2) * 1000)  # mJ
    assert pcie_rx == (pynvml.NVML_SUCCESS, 1 * MIB * 10 + 512 * MIB * 2)
    assert state == (pynvml.NVML_SUCCESS, pynvml.NVML_NVLINK_STATE_ACTIVE)
    assert speed == (pynvml.NVML_SUCCESS, 26562)
    assert unknown[0] == pynvml.NVML_ERROR_NOT_SUPPORTED


def test_throttle_time_counters_follow_the_active_reasons(
    fake: FakeNvml, clock: ManualClock
) -> None:
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    clock.advance(15.0)  # prefill holds sw_power_cap for 5 s so far
    assert pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle) == (
        pynvml.nvmlClocksEventReasonSwPowerCap
    )
    power_cap, low_util = _fields(
        handle,
        pynvml.NVML_FI_DEV_PERF_POLICY_POWER,
        pynvml.NVML_FI_DEV_PERF_POLICY_LOW_UTILIZATION,
    )
    assert power_cap == (pynvml.NVML_SUCCESS, 5 * 10**9)
    assert low_util == (pynvml.NVML_SUCCESS, 10 * 10**9)  # gpu_idle during the idle phase


def test_memory_v1_and_v2(fake: FakeNvml) -> None:
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    v2 = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
    assert v2.total == 81559 * MIB
    assert v2.reserved + v2.used + v2.free == v2.total
    assert v2.used == int(0.9 * (v2.total - v2.reserved))
    v1 = pynvml.nvmlDeviceGetMemoryInfo(handle)
    assert v1.total == v2.total
    assert v1.used == v2.used + v2.reserved


def test_clocks_utilization_temperature(fake: FakeNvml, clock: ManualClock) -> None:
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM) == 1980
    assert pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM) == round(1980 * 0.175)
    assert pynvml.nvmlDeviceGetUtilizationRates(handle).gpu == 0
    clock.advance(40.0)  # decode
    utilization = pynvml.nvmlDeviceGetUtilizationRates(handle)
    assert (utilization.gpu, utilization.memory) == (100, 80)
    assert pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU) == 61


def test_processes(fake: FakeNvml) -> None:
    handle = pynvml.nvmlDeviceGetHandleByIndex(1)
    (process,) = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    assert process.pid == 40100
    fake.set_processes(1, [(7, 1 * GIB), (8, 2 * GIB), (9, 3 * GIB)])
    processes = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    assert [(p.pid, p.usedGpuMemory) for p in processes] == [(7, GIB), (8, 2 * GIB), (9, 3 * GIB)]
    fake.set_processes(1, [])
    assert pynvml.nvmlDeviceGetComputeRunningProcesses(handle) == []


# --- MIG and minimal --------------------------------------------------------------------------


def test_mig_devices(clock: ManualClock) -> None:
    with FakeNvml("mig", clock=clock) as fake:
        pynvml.nvmlInit()
        gpu = pynvml.nvmlDeviceGetHandleByIndex(0)
        assert pynvml.nvmlDeviceGetMigMode(gpu) == [1, 1]
        assert pynvml.nvmlDeviceGetMaxMigDeviceCount(gpu) == 7
        migs = [pynvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, i) for i in range(3)]
        with pytest.raises(pynvml.NVMLError_NotFound):
            pynvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, 3)
        names = [pynvml.nvmlDeviceGetName(m) for m in migs]
        assert names[2] == "NVIDIA H100 80GB HBM3 MIG 1g.10gb"
        assert all(pynvml.nvmlDeviceGetUUID(m).startswith("MIG-") for m in migs)
        assert pynvml.nvmlDeviceIsMigDeviceHandle(migs[0]).value == 1
        parent = pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(migs[1])
        assert pynvml.nvmlDeviceGetUUID(parent) == fake.devices[0].uuid
        assert pynvml.nvmlDeviceGetMemoryInfo(migs[2]).total == 9856 * MIB
        for handle in (gpu, migs[0]):
            with pytest.raises(pynvml.NVMLError_NotSupported):
                pynvml.nvmlDeviceGetUtilizationRates(handle)
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlDeviceGetFieldValues(migs[0], [pynvml.NVML_FI_DEV_POWER_INSTANT])
        assert len(pynvml.nvmlDeviceGetComputeRunningProcesses(gpu)) == 3
        pynvml.nvmlShutdown()


def test_minimal_answers_few_fields(clock: ManualClock) -> None:
    with FakeNvml("minimal", clock=clock):
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        power, memory_temp, energy = _fields(
            handle,
            pynvml.NVML_FI_DEV_POWER_INSTANT,
            pynvml.NVML_FI_DEV_MEMORY_TEMP,
            pynvml.NVML_FI_DEV_ENERGY,
        )
        assert power[0] == energy[0] == pynvml.NVML_SUCCESS
        assert memory_temp[0] == pynvml.NVML_ERROR_NOT_SUPPORTED
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
        assert pynvml.nvmlDeviceGetMemoryInfo(handle).total == 15360 * MIB
        pynvml.nvmlShutdown()


# --- GPM --------------------------------------------------------------------------------------


def _metrics(first: object, second: object, ids: list[int]) -> dict[int, tuple[int, float]]:
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics = len(ids)
    request.sample1 = first
    request.sample2 = second
    for i, metric_id in enumerate(ids):
        request.metrics[i].metricId = metric_id
    pynvml.nvmlGpmMetricsGet(request)
    return {
        request.metrics[i].metricId: (request.metrics[i].nvmlReturn, request.metrics[i].value)
        for i in range(len(ids))
    }


def test_gpm_cycle_returns_the_phase_values(fake: FakeNvml, clock: ManualClock) -> None:
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    first, second = pynvml.nvmlGpmSampleAlloc(), pynvml.nvmlGpmSampleAlloc()
    clock.advance(41.0)  # decode: 10 s idle + 20 s prefill, then decode from 30 s
    pynvml.nvmlGpmSampleGet(handle, first)
    clock.advance(2.5)
    pynvml.nvmlGpmSampleGet(handle, second)
    fake.gpm_not_supported(pynvml.NVML_GPM_METRIC_FP64_UTIL)
    values = _metrics(
        first,
        second,
        [
            pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL,
            pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL,
            pynvml.NVML_GPM_METRIC_PCIE_RX_PER_SEC,
            pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC,
            pynvml.NVML_GPM_METRIC_NVLINK_L0_RX_PER_SEC + 2 * 17,
            pynvml.NVML_GPM_METRIC_FP64_UTIL,
            pynvml.NVML_GPM_METRIC_NVDEC_0_UTIL,
        ],
    )
    ok = {metric_id: value for metric_id, (code, value) in values.items() if code == 0}
    assert ok[pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL] == pytest.approx(18.0)
    assert ok[pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL] == pytest.approx(82.0)
    assert ok[pynvml.NVML_GPM_METRIC_PCIE_RX_PER_SEC] == pytest.approx(64.0)
    assert ok[pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC] == pytest.approx(18 * 1024)
    assert ok[pynvml.NVML_GPM_METRIC_NVLINK_L0_RX_PER_SEC + 34] == pytest.approx(1024)
    assert values[pynvml.NVML_GPM_METRIC_FP64_UTIL][0] == pynvml.NVML_ERROR_NOT_SUPPORTED
    assert values[pynvml.NVML_GPM_METRIC_NVDEC_0_UTIL][0] == pynvml.NVML_ERROR_NOT_SUPPORTED
    with pytest.raises(pynvml.NVMLError_InvalidArgument):  # reversed window
        _metrics(second, first, [pynvml.NVML_GPM_METRIC_SM_UTIL])
    pynvml.nvmlGpmSampleFree(first)
    pynvml.nvmlGpmSampleFree(second)


def test_gpm_window_across_phases_is_time_weighted(fake: FakeNvml, clock: ManualClock) -> None:
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    first, second = pynvml.nvmlGpmSampleAlloc(), pynvml.nvmlGpmSampleAlloc()
    clock.advance(8.0)
    pynvml.nvmlGpmSampleGet(handle, first)  # 2 s of idle (tensor 0) ...
    clock.advance(4.0)
    pynvml.nvmlGpmSampleGet(handle, second)  # ... then 2 s of prefill (tensor 0.78)
    values = _metrics(first, second, [pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL])
    assert values[pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL][1] == pytest.approx(39.0)


def test_gpm_unsupported_on_a100(clock: ManualClock) -> None:
    with FakeNvml("a100", clock=clock):
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        assert pynvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice == 0
        sample = pynvml.nvmlGpmSampleAlloc()
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlGpmSampleGet(handle, sample)
        pynvml.nvmlGpmSampleFree(sample)
        pynvml.nvmlShutdown()


# --- faults ------------------------------------------------------------------------------------


def test_lose_gpu(fake: FakeNvml) -> None:
    handle = pynvml.nvmlDeviceGetHandleByIndex(3)
    fake.lose_gpu(3)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        pynvml.nvmlDeviceGetName(handle)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        pynvml.nvmlDeviceGetHandleByIndex(3)
    assert pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(2))


def test_gpm_no_permission_and_targeted_failures(fake: FakeNvml) -> None:
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    sample = pynvml.nvmlGpmSampleAlloc()
    fake.gpm_no_permission()
    with pytest.raises(pynvml.NVMLError_NoPermission):
        pynvml.nvmlGpmSampleGet(handle, sample)
    fake.fail("nvmlDeviceGetUtilizationRates", pynvml.NVML_ERROR_TIMEOUT, gpu=1)
    pynvml.nvmlDeviceGetUtilizationRates(handle)
    with pytest.raises(pynvml.NVMLError_Timeout):
        pynvml.nvmlDeviceGetUtilizationRates(pynvml.nvmlDeviceGetHandleByIndex(1))
    fake.clear_failures()
    pynvml.nvmlGpmSampleGet(handle, sample)
    pynvml.nvmlGpmSampleFree(sample)
    with pytest.raises(KeyError):
        fake.fail("nvmlNoSuchFunction", pynvml.NVML_ERROR_TIMEOUT)


def test_not_supported_and_pinned_fields(fake: FakeNvml) -> None:
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    fake.not_supported(pynvml.NVML_FI_DEV_MEMORY_TEMP)
    fake.set_field(0, pynvml.NVML_FI_DEV_REMAPPED_PENDING, 1)
    temp, pending = _fields(
        handle, pynvml.NVML_FI_DEV_MEMORY_TEMP, pynvml.NVML_FI_DEV_REMAPPED_PENDING
    )
    assert temp[0] == pynvml.NVML_ERROR_NOT_SUPPORTED
    assert pending == (pynvml.NVML_SUCCESS, 1)


def test_slow_calls_still_answer(fake: FakeNvml) -> None:
    fake.slow_calls(0.001)
    assert pynvml.nvmlDeviceGetCount() == 8
    fake.slow_calls(0)
    with pytest.raises(ValueError, match="negative"):
        fake.slow_calls(-1)


def test_library_missing_goes_through_pynvml_loading(clock: ManualClock) -> None:
    with FakeNvml("h100x8", clock=clock, library_missing=True):
        with pytest.raises(pynvml.NVMLError_LibraryNotFound):
            pynvml.nvmlInit()
        assert pynvml.nvmlLib is None


def test_xid_events(fake: FakeNvml) -> None:
    handle = pynvml.nvmlDeviceGetHandleByIndex(4)
    event_set = pynvml.nvmlEventSetCreate()
    pynvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, event_set)
    assert fake.inject_xid(5, 79) == 0  # nobody listens on GPU 5
    assert fake.inject_xid(4, 79) == 1
    data = pynvml.nvmlEventSetWait_v2(event_set, 1000)
    assert data.eventType == pynvml.nvmlEventTypeXidCriticalError
    assert data.eventData == 79
    assert ctypes.cast(data.device, ctypes.c_void_p).value == fake.devices[4].address
    assert pynvml.nvmlDeviceGetUUID(data.device) == fake.devices[4].uuid
    with pytest.raises(pynvml.NVMLError_Timeout):
        pynvml.nvmlEventSetWait_v2(event_set, 1)
    pynvml.nvmlEventSetFree(event_set)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlEventSetFree(event_set)


def test_call_counts(fake: FakeNvml) -> None:
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    pynvml.nvmlDeviceGetFieldValues(handle, [pynvml.NVML_FI_DEV_POWER_INSTANT])
    calls = fake.calls()
    assert calls["nvmlDeviceGetFieldValues"] == 1
    assert calls["nvmlInitWithFlags"] == 1


# --- workload -----------------------------------------------------------------------------------


def test_workload_integral_is_exact_across_cycles() -> None:
    workload = Workload(
        (
            Phase("a", 2.0, GpuRates(power_watts=100.0)),
            Phase("b", 3.0, GpuRates(power_watts=200.0), per_gpu=((1, GpuRates(50.0)),)),
        )
    )
    assert workload.cycle_seconds == 5.0
    power = lambda r: r.power_watts  # noqa: E731
    assert workload.integral(0, 0.0, power) == 0.0
    assert workload.integral(0, 12.0, power) == 2 * (200 + 600) + 200 + 0
    assert workload.integral(0, 13.0, power) == 2 * 800 + 200 + 200
    assert workload.integral(1, 13.0, power) == 2 * (200 + 150) + 200 + 50
    assert workload.average(0, 2.5, 4.5, power) == 200.0
    assert workload.average(0, 1.0, 3.0, power) == 150.0
    assert workload.phase_at(-1.0).name == "a"
    with pytest.raises(ValueError, match="duration"):
        Phase("empty", 0.0, GpuRates(1.0))
    with pytest.raises(ValueError, match="at least one"):
        Workload(())


def test_default_workload_tells_the_decode_story() -> None:
    decode = DEFAULT_WORKLOAD.phase_at(45.0).rates
    prefill = DEFAULT_WORKLOAD.phase_at(15.0).rates
    assert decode.dram_active > decode.tensor_active
    assert prefill.tensor_active > prefill.dram_active
    assert decode.utilization_gpu == 1.0  # the naive metric cannot tell them apart
    assert DEFAULT_WORKLOAD.phase_at(65.0).name == "allreduce"


def test_manual_clock() -> None:
    clock = ManualClock(5.0)
    assert clock.advance(1.5) == 6.5
    clock.set(10.0)
    assert clock() == 10.0
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(9.0)
