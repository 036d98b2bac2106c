"""Unit constants and conversions. Everything inside gpumetrics is in base units:
bytes, seconds, joules, watts, FLOPs, ratios in 0..1."""

from __future__ import annotations

__all__ = [
    "GB",
    "GIB",
    "KIB",
    "MIB",
    "TB",
    "TERA",
    "format_bytes",
    "format_si",
]

KIB = 1024
MIB = 1024**2
GIB = 1024**3
GB = 10**9
TB = 10**12
TERA = 1e12


def format_si(value: float, unit: str = "", digits: int = 3) -> str:
    """Format with an SI prefix: 1.98e15 -> '1.98 P' + unit."""
    prefixes = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
    magnitude = abs(value)
    for scale, prefix in prefixes:
        if magnitude >= scale:
            return f"{value / scale:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}".rstrip()


def format_bytes(value: float) -> str:
    """Format a byte count with binary prefixes: 131072 -> '128 KiB'."""
    for scale, prefix in ((GIB * 1024, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {prefix}"
    return f"{value:.4g} B"
