"""Roofline arithmetic: intensity, predicted time, bound, MFU, MBU. Pure functions."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Bound",
    "arithmetic_intensity",
    "attainable_flops",
    "bound",
    "mbu",
    "mfu",
    "ridge_point",
    "roofline_time",
]


class Bound(StrEnum):
    """Which roof limits a workload."""

    MEMORY = "memory"
    COMPUTE = "compute"


def arithmetic_intensity(flops: float, bytes_moved: float) -> float:
    """FLOPs per byte of memory traffic."""
    if bytes_moved <= 0:
        raise ValueError(f"bytes_moved must be > 0, got {bytes_moved}")
    return flops / bytes_moved


def ridge_point(peak_flops: float, bandwidth: float) -> float:
    """Intensity where the roofs meet: H100 SXM fp8 1.979e15 / 3.35e12 ≈ 591 FLOP/byte."""
    return peak_flops / bandwidth


def roofline_time(flops: float, bytes_moved: float, peak_flops: float, bandwidth: float) -> float:
    """Lower bound on time: max(FLOPs / peak, bytes / bandwidth)."""
    return max(flops / peak_flops, bytes_moved / bandwidth)


def attainable_flops(intensity: float, peak_flops: float, bandwidth: float) -> float:
    """The roof at `intensity`: min(peak, intensity x bandwidth)."""
    return min(peak_flops, intensity * bandwidth)


def bound(flops: float, bytes_moved: float, peak_flops: float, bandwidth: float) -> Bound:
    """COMPUTE when FLOPs take at least as long as bytes at peak rates, else MEMORY.

    Equivalent to intensity >= ridge point.
    """
    compute_time = flops / peak_flops
    memory_time = bytes_moved / bandwidth
    return Bound.COMPUTE if compute_time >= memory_time else Bound.MEMORY


def mfu(achieved_flops_per_second: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over the dense peak."""
    return achieved_flops_per_second / peak_flops


def mbu(achieved_bytes_per_second: float, bandwidth: float) -> float:
    """Memory bandwidth utilisation: achieved bytes/s over the peak bandwidth."""
    return achieved_bytes_per_second / bandwidth
