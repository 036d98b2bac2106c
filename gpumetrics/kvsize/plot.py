"""The hit-ratio curve as a PNG (matplotlib, Agg; `pip install 'gpumetrics[plot]'`).

Hit ratio (blocks, and prompt tokens dotted) against KV capacity on a log x axis, the
infinite-cache maximum dashed, the target capacity marked; with a model, a second x axis
gives the capacity in bytes of KV. Drawn on its own Figure (no pyplot state).
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

from ..units import format_bytes
from .sizing import SizingReport

__all__ = ["curve_png"]


def curve_png(report: SizingReport, title: str) -> bytes:
    """The figure as PNG bytes (1000 x 600 pixels)."""
    curve = report.curve
    top = max(curve.saturation, 2.0) * 2
    start = max(min(float(curve.capacities[0]) if len(curve.capacities) else 1.0, top), 1.0)
    xs = np.geomspace(start / 2 if start > 1 else 1.0, top, 600)
    fig = Figure(figsize=(10.0, 6.0))
    ax = fig.add_subplot()
    ax.step(xs, curve.hit_ratio(xs), where="post", color="#1f77b4", linewidth=2,
            label="hit ratio (blocks)")  # fmt: skip
    ax.step(xs, curve.token_hit_ratio(xs), where="post", color="#1f77b4", linestyle=":",
            label="hit ratio (prompt tokens)")  # fmt: skip
    ax.axhline(curve.max_hit_ratio, color="#555", linestyle="--", linewidth=1,
               label=f"infinite cache: {curve.max_hit_ratio:.3f}")  # fmt: skip
    row = report.target_row
    if row is not None:
        ax.axvline(row.capacity_blocks, color="#d62728", linewidth=1)
        ax.plot([row.capacity_blocks], [row.hit_ratio], "o", color="#d62728",
                label=f"{report.target:.0%} of max at {row.capacity_blocks:,} blocks")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(0, min(1.0, curve.max_hit_ratio * 1.15 + 0.02))
    ax.set_xlabel(f"KV cache capacity (blocks of {curve.block_size} tokens)")
    ax.set_ylabel("prefix-cache hit ratio")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    costs = report.costs
    if costs is not None:
        per_block = costs.kv_bytes_per_token * curve.block_size

        def to_bytes(blocks: Any) -> Any:
            return np.asarray(blocks, dtype=np.float64) * per_block

        def to_blocks(size: Any) -> Any:
            return np.asarray(size, dtype=np.float64) / per_block

        top_axis = ax.secondary_xaxis("top", functions=(to_bytes, to_blocks))
        top_axis.set_xlabel(f"KV bytes, {costs.model} ({costs.kv_dtype}, TP{costs.tp})")
        top_axis.xaxis.set_major_locator(LogLocator(base=1024, subs=(1.0, 10.0, 100.0)))
        top_axis.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_bytes(v)))
    sampled = f", SHARDS rate {curve.sample_rate:.3g}" if curve.sample_rate < 1 else ""
    ax.set_title(f"{title}{sampled}", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
