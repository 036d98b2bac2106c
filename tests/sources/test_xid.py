"""XID counting on its own thread: injected events become counters; the thread stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pynvml

from gpumetrics.catalog import gpu as g
from gpumetrics.samples import Collection
from gpumetrics.sources.nvml import NvmlSource
from gpumetrics.sources.xid import XidWatcher
from gpumetrics.testing import FakeNvml

from .conftest import START

Install = Callable[..., FakeNvml]
Open = Callable[..., NvmlSource]


def _eventually(condition: Callable[[], bool], deadline_seconds: float = 10.0) -> None:
    """Poll `condition` until it holds; fail after the deadline (not a timing assertion)."""
    deadline = time.monotonic() + deadline_seconds
    while not condition():
        assert time.monotonic() < deadline, "condition did not hold before the deadline"
        time.sleep(0.005)


def _xid_threads() -> int:
    return sum(t.name == "gpumetrics-xid" and t.is_alive() for t in threading.enumerate())


def _xids(collection: Collection) -> dict[tuple[str, str], float]:
    return {
        (s.labels[0], s.labels[3]): float(s.value)  # type: ignore[arg-type]
        for s in collection.samples
        if s.metric == g.GPU_XID_ERRORS.name
    }


def test_injected_xids_become_counters(install_fake: Install, open_source: Open) -> None:
    fake = install_fake("h100x8")
    source = open_source()
    assert _xids(source.collect(START)) == {}
    assert fake.inject_xid(2, 79) == 1
    assert fake.inject_xid(2, 79) == 1
    assert fake.inject_xid(0, 48) == 1
    expected = {("2", "79"): 2.0, ("0", "48"): 1.0}
    _eventually(lambda: _xids(source.collect(START)) == expected)
    labels = [s.labels for s in source.collect(START).samples if s.metric == g.GPU_XID_ERRORS.name]
    assert ("2", fake.devices[2].uuid, fake.devices[2].name, "79") in labels


def test_watcher_stops_and_frees_its_event_set(install_fake: Install) -> None:
    fake = install_fake("h100x8")
    pynvml.nvmlInit()
    try:
        handles = [(str(i), pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(8)]
        watcher = XidWatcher(handles, timeout_ms=20)
        assert watcher.running
        assert watcher.watching == tuple(str(i) for i in range(8))
        fake.inject_xid(7, 31)
        _eventually(lambda: watcher.counts() == {("7", 31): 1})
        watcher.close()
        assert not watcher.running
        assert fake.calls()["nvmlEventSetFree"] == 1
        watcher.close()  # idempotent
        assert fake.calls()["nvmlEventSetFree"] == 1
    finally:
        pynvml.nvmlShutdown()


def test_source_close_stops_the_thread(install_fake: Install) -> None:
    fake = install_fake("h100x8")
    source = NvmlSource(xid_timeout_ms=20)
    assert source.xid_running
    assert _xid_threads() == 1
    source.close()
    assert not source.xid_running
    assert _xid_threads() == 0
    assert fake.calls()["nvmlEventSetFree"] == 1


def test_no_event_support_means_no_thread(install_fake: Install, open_source: Open) -> None:
    fake = install_fake("minimal")
    source = open_source()
    assert not source.xid_running
    assert source.collect(START).errors == ()
    assert fake.calls()["nvmlEventSetFree"] == 1


def test_wait_errors_are_reported_and_the_thread_keeps_going(
    install_fake: Install, open_source: Open
) -> None:
    fake = install_fake("a100")
    fake.fail("nvmlEventSetWait_v2", pynvml.NVML_ERROR_UNKNOWN)
    source = open_source()
    errors: list[str] = []

    def reported() -> bool:
        errors.extend(source.collect(START).errors)
        return bool(errors)

    _eventually(reported)
    assert set(errors) == {"NVML_ERROR_UNKNOWN"}
    fake.clear_failures()
    fake.inject_xid(0, 94)
    _eventually(lambda: _xids(source.collect(START)) == {("0", "94"): 1.0})


def test_lost_gpu_drops_its_xid_series(install_fake: Install, open_source: Open) -> None:
    fake = install_fake("h100x8")
    source = open_source()
    fake.inject_xid(1, 79)
    _eventually(lambda: ("1", "79") in _xids(source.collect(START)))
    fake.lose_gpu(1)
    assert _xids(source.collect(START + 1.0)) == {}
