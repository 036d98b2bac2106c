"""device_memory_available: the kernel's MemAvailable on the CPU (CUDA runs in gpu-check)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'")

from gpumetrics.costmodel.fit import host_memory_available
from gpumetrics.worker import memory


def test_cpu_is_mem_available() -> None:
    got = memory.device_memory_available("cpu")
    expected = host_memory_available()
    if expected is None:
        assert got is None
        return
    assert got is not None
    available, where = got
    assert where == "this host (MemAvailable)"
    assert abs(available - expected) < 256 << 20  # two reads, moments apart


def test_cpu_without_meminfo_cannot_tell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "host_memory_available", lambda: None)
    assert memory.device_memory_available("cpu") is None
