"""Roofline arithmetic against REFERENCE.md §1 (dense peaks) and hand-computed values."""

from __future__ import annotations

import pytest

from gpumetrics.derive import (
    Bound,
    arithmetic_intensity,
    attainable_flops,
    bound,
    mbu,
    mfu,
    ridge_point,
    roofline_time,
)
from gpumetrics.hardware import GPUS


def test_ridge_h100_sxm_fp8() -> None:
    # The source article: 1.98e15 FP8 ops/s over 3.35 TB/s -> 591:1.
    assert ridge_point(1.9789e15, 3.35e12) == pytest.approx(1.9789e15 / 3.35e12)
    assert ridge_point(1.9789e15, 3.35e12) == pytest.approx(590.7, abs=0.1)
    assert round(ridge_point(1.9789e15, 3.35e12)) == 591
    assert GPUS["h100-sxm"].ridge("fp8") == pytest.approx(590.7, abs=0.1)


def test_ridge_table_rows() -> None:
    assert GPUS["h100-sxm"].ridge("bf16") == pytest.approx(989.4e12 / 3.35e12)
    assert round(GPUS["h100-sxm"].ridge("bf16")) == 295
    assert GPUS["h200"].ridge("bf16") == pytest.approx(989.4e12 / 4.8e12)
    assert GPUS["h200"].ridge("bf16") == pytest.approx(206.125)
    assert round(GPUS["h200"].ridge("fp8")) == 412
    assert GPUS["a100-80gb"].ridge("bf16") == pytest.approx(312e12 / 2.039e12)
    assert round(GPUS["a100-80gb"].ridge("bf16")) == 153


def test_intensity() -> None:
    assert arithmetic_intensity(1000.0, 10.0) == 100.0
    assert arithmetic_intensity(0.0, 10.0) == 0.0


def test_roofline_time() -> None:
    # peak 1000 FLOP/s, 10 B/s: ridge 100 FLOP/B
    assert roofline_time(2000, 10, 1000, 10) == 2.0  # compute 2 s, memory 1 s
    assert roofline_time(1000, 50, 1000, 10) == 5.0  # compute 1 s, memory 5 s
    assert roofline_time(1000, 10, 1000, 10) == 1.0  # at the ridge both are 1 s


def test_bound_at_below_above_the_ridge() -> None:
    assert bound(1000, 10, 1000, 10) is Bound.COMPUTE  # exactly at the ridge: compute
    assert bound(999, 10, 1000, 10) is Bound.MEMORY
    assert bound(1001, 10, 1000, 10) is Bound.COMPUTE
    assert bound(0, 10, 1000, 10) is Bound.MEMORY


def test_bound_on_real_gpus() -> None:
    # Llama-3-8B batch-1 decode at 4k context: 17.16 GFLOP over 15.55 GB: ~1.1 FLOP/byte.
    h200 = GPUS["h200"]
    flops, moved = 17_156_800_512, 15_546_318_848
    assert bound(flops, moved, h200.peak("bf16"), h200.hbm_bandwidth) is Bound.MEMORY
    assert roofline_time(flops, moved, h200.peak("bf16"), h200.hbm_bandwidth) == pytest.approx(
        moved / 4.8e12
    )
    # An 8192^3 matmul in bf16 (2·8192^3 FLOPs, 3 matrices of 8192^2 x 2 bytes) is compute-bound.
    mm_flops = 2 * 8192**3
    mm_bytes = 3 * 8192**2 * 2
    assert mm_flops / mm_bytes == pytest.approx(2730.67, abs=0.01)
    assert bound(mm_flops, mm_bytes, h200.peak("bf16"), h200.hbm_bandwidth) is Bound.COMPUTE


def test_bound_values() -> None:
    assert Bound.MEMORY == "memory"
    assert Bound.COMPUTE == "compute"


def test_attainable_flops() -> None:
    assert attainable_flops(50, 1000, 10) == 500  # on the bandwidth slope
    assert attainable_flops(100, 1000, 10) == 1000  # at the ridge
    assert attainable_flops(200, 1000, 10) == 1000  # flat roof
    h100 = GPUS["h100-sxm"]
    assert attainable_flops(1.0, h100.peak("fp8"), h100.hbm_bandwidth) == pytest.approx(3.35e12)


def test_mfu_mbu() -> None:
    assert mfu(494.7e12, 989.4e12) == pytest.approx(0.5)
    assert mfu(0.0, 989.4e12) == 0.0
    assert mbu(4.3e12, 4.8e12) == pytest.approx(0.8958, abs=1e-4)
    assert mbu(3.35e12, 3.35e12) == pytest.approx(1.0)
    # MFU is against the dense peak: the measured ~780 TFLOP/s bf16 on an H200 is ~79 %,
    # not the ~39 % a 2:4-sparse 1979 TFLOP/s "peak" would suggest.
    assert mfu(780e12, GPUS["h200"].peak("bf16")) == pytest.approx(780 / 989.4)
