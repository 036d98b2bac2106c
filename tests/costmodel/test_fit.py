"""The memory-fit check: /proc/meminfo parsing and hand-computed needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumetrics.costmodel import PRESETS, activation_bytes
from gpumetrics.costmodel.fit import (
    DoesNotFitError,
    check_fit,
    host_memory_available,
    memory_need,
    parse_mem_available,
)

GIB = 2**30

MEMINFO = """MemTotal:       24683664 kB
MemFree:         1021140 kB
MemAvailable:   23480640 kB
Buffers:          408212 kB
"""


def test_mem_available_is_kib_times_1024() -> None:
    assert parse_mem_available(MEMINFO) == 23_480_640 * 1024
    assert parse_mem_available("MemTotal: 5 kB\n") is None  # kernels before 3.14
    assert parse_mem_available("MemAvailable: lots\n") is None


def test_host_memory_available_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "meminfo"
    path.write_text(MEMINFO)
    assert host_memory_available(path) == 24_044_175_360
    assert host_memory_available(tmp_path / "absent") is None


def test_need_by_hand_for_the_8b_on_cpu() -> None:
    """fp32 weights 8,030,261,248 x 4; KV 64 blocks x 16 tokens x 2·32·8·128 x 4 bytes."""
    model = PRESETS["llama-3-8b"]
    need = memory_need(model, dtype="fp32", kv_tokens=64 * 16, step_tokens=512)
    assert need.weights == 32_121_044_992
    assert need.kv == 1024 * 262_144 == 268_435_456
    assert need.activations == activation_bytes(model, 512, act_dtype="fp32")
    assert need.total == need.weights + need.kv + need.activations


def test_check_fit_refuses_in_one_line() -> None:
    model = PRESETS["llama-3-70b"]
    need = memory_need(model, dtype="fp32", kv_tokens=1024, step_tokens=512)
    with pytest.raises(DoesNotFitError) as info:
        check_fit(model, need, 22 * GIB, where="this host (MemAvailable)")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("llama-3-70b does not fit: weights 262.8 GiB (fp32)")
    assert "this host (MemAvailable) has 22 GiB" in message
    assert isinstance(info.value, MemoryError)


def test_check_fit_passes_exactly_at_the_limit() -> None:
    model = PRESETS["tiny"]
    need = memory_need(model, dtype="fp32", kv_tokens=16, step_tokens=16)
    check_fit(model, need, need.total, where="x")
    with pytest.raises(DoesNotFitError):
        check_fit(model, need, need.total - 1, where="x")
