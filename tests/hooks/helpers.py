"""Shared helpers for the hooks tests: values by (metric, labels), a tiny model spec."""

from __future__ import annotations

from gpumetrics.catalog import engine as cat
from gpumetrics.costmodel import ModelSpec
from gpumetrics.hooks import EngineMetrics
from gpumetrics.samples import HistogramValue
from gpumetrics.testing.sample_values import sample_values

Values = dict[tuple[str, tuple[str, ...]], float | HistogramValue]

#: A model small enough to count its FLOPs by hand: L=2, D=8, Hq=2, Hkv=1, d=4, I=16, V=10.
SMALL = ModelSpec(
    name="small", layers=2, hidden=8, heads=2, kv_heads=1, head_dim=4, intermediate=16, vocab=10
)


def counters(metrics: EngineMetrics) -> Values:
    """The non-histogram values except the hook-error counter (for before/after comparisons
    of a dropped call, which changes nothing but that counter)."""
    return {
        k: v
        for k, v in sample_values(metrics.snapshot()).items()
        if not isinstance(v, HistogramValue) and k[0] != cat.HOOK_ERRORS.name
    }
