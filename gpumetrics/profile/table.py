"""The report's table as plain strings: one header and one row per cell, shared by the
terminal table (`cli/profile.py`, rich) and the HTML report, so both show the same numbers."""

from __future__ import annotations

from typing import Final

from ..units import format_bytes, format_si
from .analysis import CellResult, Mark
from .attach import AttachSummary
from .report import ProfileReport

__all__ = [
    "GPU_COLUMNS",
    "LEGEND",
    "MARK_NAMES",
    "attach_rows",
    "cell_row",
    "columns",
    "has_gpu_activity",
    "header_lines",
]

_BASE: Final = (
    "cell",
    "p50 ms",
    "p95 ms",
    "tokens/s",
    "FLOP/s",
    "bytes/s",
    "FLOP/B",
    "roof ms",
    "% roof",
    "bound",
    "MFU",
    "MBU",
    "KV used",
)
#: Measured GPU activity columns (NVML/GPM), shown when some cell has them.
GPU_COLUMNS: Final = ("tensor", "DRAM", "naive util")

#: How marks read in tables.
MARK_NAMES: Final = {
    Mark.FIRST_COMPUTE_BOUND: "1st compute-bound",
    Mark.KNEE: "knee",
    Mark.LARGEST_FIT: "largest fit",
}


#: What the less obvious columns and marks mean, under the table (terminal and HTML alike).
LEGEND: Final = (
    "roof ms: the step time the roofs allow; % roof: that over the measured step; "
    "knee: doubling the batch past it gains < 10 % tokens/s; 1st compute-bound: the smallest "
    "swept batch (chunk) at or past the ridge; largest fit: the largest swept batch whose KV "
    "(prompt plus the tokens decoded in the cell) fits the budget, never above the verdict's "
    "batch bound"
)


def columns(gpu: bool) -> tuple[str, ...]:
    """Column headers, with or without the GPU activity columns."""
    return (*_BASE, *(GPU_COLUMNS if gpu else ()), "marks")


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}" if value < 0.1 else f"{value:.0%}"


def cell_row(result: CellResult, *, gpu: bool) -> list[str]:
    """One row under `columns(gpu)`; a skipped cell has "skipped: <reason>" in the second
    column and blanks up to the marks."""
    marks = ", ".join(MARK_NAMES[m] for m in Mark if m in result.marks)
    n = result.numbers
    width = len(columns(gpu))
    if n is None:
        return [result.cell.label, f"skipped: {result.skipped}", *[""] * (width - 3), marks]
    row = [
        result.cell.label,
        _ms(n.step_p50),
        _ms(n.step_p95),
        f"{n.tokens_per_second:,.0f}",
        format_si(n.achieved_flops),
        format_si(n.achieved_bytes),
        f"{n.intensity:.3g}",
        _ms(n.predicted_step_seconds),
        f"{n.roofline_fraction:.0%}",
        n.bound.value,
        _pct(n.mfu),
        _pct(n.mbu),
        format_bytes(n.kv_used_bytes),
    ]
    if gpu:
        g = n.gpu
        row += [_pct(g.tensor_active if g else None), _pct(g.dram_active if g else None)]
        row.append(_pct(g.utilization_naive if g else None))
    return [*row, marks]


def has_gpu_activity(report: ProfileReport) -> bool:
    """Whether any cell carries measured GPU activity."""
    return any(r.numbers is not None and r.numbers.gpu is not None for r in report.results)


def header_lines(report: ProfileReport) -> list[str]:
    """What was profiled, against which roofs, with which KV pool."""
    lines = []
    if report.model is not None:
        m = report.model
        lines.append(f"model {m.name} ({m.total_params / 1e6:,.1f} M params, {report.dtype})")
    if report.device is not None:
        d = report.device
        threads = f", {d.threads} threads" if d.threads else ""
        lines.append(f"device {d.kind}: {d.name}{threads}, torch {d.torch_version}")
    if report.roofs is not None:
        for roof in (report.roofs.reference, report.roofs.achievable):
            if roof is not None:
                lines.append(
                    f"{roof.kind} roofs: {format_si(roof.peak_flops, 'FLOP/s')}, "
                    f"{format_si(roof.bandwidth, 'B/s')} -> ridge {roof.ridge:.3g} FLOP/B "
                    f"({roof.source})"
                )
    if report.pool is not None:
        p = report.pool
        lines.append(
            f"KV pool {p.blocks:,} blocks x {p.block_size} tokens ({format_bytes(p.bytes)}); "
            f"budget {p.budget_tokens:,} tokens ({p.budget_source})"
        )
    if report.plan is not None:
        lines.append(
            f"{report.plan.steps} timed steps per cell after {report.plan.warmup} warm-up; "
            "FLOPs and bytes: the cost model over the work each step really ran"
        )
    lines.append(f"GPU counters (NVML/GPM): {report.gpu_counters}")
    lines.extend(report.notes)
    return lines


def attach_rows(summary: AttachSummary) -> list[tuple[str, str]]:
    """(name, value) rows of an attach window."""

    def num(value: float | None, unit: str = "") -> str:
        return "n/a" if value is None else format_si(value, unit)

    gpu = summary.gpu
    return [
        ("window", f"{summary.window_seconds:.1f} s, {summary.scrapes} scrapes"),
        ("engine", f"{summary.kind or '?'} serving {summary.model or '?'}"),
        ("tokens/s", num(summary.tokens_per_second)),
        (
            "prefill / decode tokens/s",
            f"{num(summary.prefill_tokens_per_second)} / {num(summary.decode_tokens_per_second)}",
        ),
        ("mean batch", "n/a" if summary.mean_batch is None else f"{summary.mean_batch:.1f}"),
        ("prefix hit ratio", _pct(summary.hit_ratio)),
        ("KV usage", _pct(summary.kv_usage)),
        ("busy", _pct(summary.busy_ratio)),
        ("FLOP/s", num(summary.flops_per_second, "FLOP/s")),
        ("bytes/s", num(summary.bytes_per_second, "B/s")),
        ("intensity", "n/a" if summary.intensity is None else f"{summary.intensity:.3g} FLOP/B"),
        ("MFU / MBU", f"{_pct(summary.mfu)} / {_pct(summary.mbu)}"),
        ("bound", summary.bound.value if summary.bound else "n/a"),
        (
            "tensor / DRAM / naive util",
            "n/a"
            if gpu is None
            else f"{_pct(gpu.tensor_active)} / {_pct(gpu.dram_active)} / "
            f"{_pct(gpu.utilization_naive)}",
        ),
    ]
