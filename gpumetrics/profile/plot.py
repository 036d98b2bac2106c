"""The report's plots as PNG bytes (matplotlib, Agg backend; `pip install 'gpumetrics[plot]'`).

The only module of gpumetrics that imports matplotlib (tests/test_boundaries.py).

* `roofline_png`: log-log roofline — achieved FLOP/s against arithmetic intensity for every
  measured cell (labelled batch/context), under the reference roofs (datasheet, user or
  achievable) and, when calibrated beside a datasheet, the achievable roofs (dashed), with the
  ridge marked; the knee and the first compute-bound cell of each group are ringed.
* `throughput_png`: decode tokens/s against batch per context, beside the roofline-predicted
  tokens/s (dotted): the gap is overhead, the flattening is the knee.

Figures are `SIZE_INCHES` at `DPI` (1000 x 600 pixels), drawn on their own Figure objects
(no pyplot state), so calls are independent and thread-safe.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Final

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..units import format_si
from .analysis import CellResult, Mark, Roof
from .measure import DECODE
from .report import ProfileReport

__all__ = ["DPI", "SIZE_INCHES", "roofline_png", "throughput_png"]

SIZE_INCHES: Final = (10.0, 6.0)
DPI: Final = 100
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _title(report: ProfileReport) -> str:
    if report.attach is not None:
        return f"engine at {report.attach.url} (per GPU)"
    model = report.model.name if report.model else "?"
    device = f"{report.device.name} ({report.device.kind})" if report.device else "?"
    dtype = f", {report.dtype}" if report.dtype else ""
    return f"{model}{dtype} on {device}"


def _roof_line(
    ax: Axes, roof: Roof, xs: Sequence[float], style: str, color: str, label_dy: int = -14
) -> None:
    ys = [min(roof.peak_flops, x * roof.bandwidth) for x in xs]
    label = (
        f"{roof.kind} roof: {format_si(roof.peak_flops, 'FLOP/s')}, "
        f"{format_si(roof.bandwidth, 'B/s')}"
    )
    ax.plot(xs, ys, style, color=color, linewidth=2, label=label)
    ax.axvline(roof.ridge, color=color, linestyle=":", linewidth=1)
    ax.annotate(
        f"ridge {roof.ridge:.3g} FLOP/B",
        (roof.ridge, roof.peak_flops),
        xytext=(4, label_dy),
        textcoords="offset points",
        fontsize=8,
        color=color,
    )


def _span(values: Sequence[float], roofs: Sequence[Roof]) -> tuple[float, float, float, float]:
    """(x_min, x_max, y_min, y_max) covering the points and the roofs' corners."""
    ridges = [r.ridge for r in roofs]
    peaks = [r.peak_flops for r in roofs]
    xs = [*values[0::2], *ridges]
    ys = [*values[1::2], *peaks]
    x_lo, x_hi = min(xs) / 4, max(xs) * 8
    y_lo = min([*ys, *(x_lo * r.bandwidth for r in roofs)]) / 4
    return x_lo, x_hi, y_lo, max(ys) * 3


#: Label offsets (points) tried in turn until one collides with no label and no other point.
_OFFSETS = ((5, 4), (5, -11), (-6, 6), (-6, -13), (5, 15), (5, -22), (-6, 17), (-6, -24))
_Box = tuple[float, float, float, float]


def _label(
    ax: Axes,
    text: str,
    xy: tuple[float, float],
    placed: list[_Box],
    others: Sequence[tuple[float, float]],
) -> None:
    """Annotate `xy` with `text` at the first offset whose label box (display pixels, about
    5 px per character) overlaps no placed label and covers no other point."""
    px, py = ax.transData.transform(xy)
    scale = DPI / 72
    width, height = 5.0 * len(text) * scale / 1.4, 9.0 * scale

    def box(dx: float, dy: float) -> _Box:
        left = px + dx * scale - (width if dx < 0 else 0.0)
        bottom = py + dy * scale - 2
        return left, bottom, left + width, bottom + height

    def clear(b: _Box) -> bool:
        hits_label = any(
            b[0] < o[2] and o[0] < b[2] and b[1] < o[3] and o[1] < b[3] for o in placed
        )
        hits_point = any(b[0] - 4 < ox < b[2] + 4 and b[1] - 4 < oy < b[3] + 4 for ox, oy in others)
        return not hits_label and not hits_point

    chosen = next((o for o in _OFFSETS if clear(box(*o))), _OFFSETS[0])
    placed.append(box(*chosen))
    ax.annotate(
        text,
        xy,
        xytext=chosen,
        textcoords="offset points",
        fontsize=7,
        ha="right" if chosen[0] < 0 else "left",
    )


def roofline_png(report: ProfileReport) -> bytes:
    """The log-log roofline of the report's measured cells (or of the attach window)."""
    fig = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    roofs = report.roofs
    points: list[tuple[str, float, float, str, str, frozenset[Mark]]] = []
    contexts = sorted({r.cell.context for r in report.results})
    for r in report.results:
        n = r.numbers
        if n is None or n.intensity <= 0 or n.achieved_flops <= 0:
            continue
        color = _COLORS[contexts.index(r.cell.context) % len(_COLORS)]
        marker = "o" if r.cell.phase == DECODE else "s"
        points.append((r.cell.label, n.intensity, n.achieved_flops, color, marker, r.marks))
    attach = report.attach.summary if report.attach else None
    if attach and attach.intensity and attach.flops_per_second:
        per_gpu = attach.flops_per_second / attach.gpus
        points.append(("engine window", attach.intensity, per_gpu, "#000000", "D", frozenset()))
    roof_list = [] if roofs is None else [roofs.reference, *filter(None, [roofs.achievable])]
    if not points and not roof_list:
        ax.text(0.5, 0.5, "nothing measured", ha="center", va="center", transform=ax.transAxes)
        return _png(fig)
    flat = [v for p in points for v in (p[1], p[2])]
    x_lo, x_hi, y_lo, y_hi = _span(flat or [1.0, 1.0], roof_list)
    xs = [x_lo * (x_hi / x_lo) ** (i / 200) for i in range(201)]
    if roofs is not None:
        _roof_line(ax, roofs.reference, xs, "-", "#333333")
        if roofs.achievable is not None:
            _roof_line(ax, roofs.achievable, xs, "--", "#e377c2", label_dy=-28)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    seen: set[str] = set()
    placed: list[_Box] = []
    pixels = [tuple(ax.transData.transform((p[1], p[2]))) for p in points]
    for i, (label, x, y, color, marker, marks) in enumerate(points):
        legend = f"context {label.split('/c')[-1]}" if "/c" in label else label
        ax.scatter(
            [x],
            [y],
            color=color,
            marker=marker,
            s=40,
            zorder=3,
            label=None if legend in seen else legend,
        )
        seen.add(legend)
        if Mark.KNEE in marks:
            ax.scatter([x], [y], s=260, facecolors="none", edgecolors="#000000", linewidths=1.2)
        if Mark.FIRST_COMPUTE_BOUND in marks:
            ax.scatter(
                [x],
                [y],
                s=90,
                marker="*",
                color="#ffbf00",
                edgecolors="#7a5c00",
                linewidths=0.5,
                zorder=4,
            )
        others = [(ox, oy) for j, (ox, oy) in enumerate(pixels) if j != i]
        _label(ax, label.removeprefix("prefill "), (x, y), placed, others)
    marked = set().union(*(p[5] for p in points)) if points else set()
    if Mark.KNEE in marked:
        ax.scatter([], [], s=120, facecolors="none", edgecolors="#000000", label="knee")
    if Mark.FIRST_COMPUTE_BOUND in marked:
        ax.scatter([], [], s=80, marker="*", color="#ffbf00", label="first compute-bound")
    if any(m == "s" for *_, m, _ in points):
        ax.scatter([], [], marker="s", color="#777777", label="prefill (squares)")
    ax.set_xlabel("arithmetic intensity (FLOP / byte of memory traffic)")
    ax.set_ylabel("achieved FLOP/s (cost-model FLOPs / measured time)")
    ax.set_title(f"Roofline: {_title(report)}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    return _png(fig)


def throughput_png(report: ProfileReport) -> bytes:
    """Decode tokens/s (measured, solid; roofline-predicted, dotted) against batch size."""
    fig = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    by_context: dict[int, list[CellResult]] = {}
    for r in report.results:
        if r.cell.phase == DECODE and r.numbers is not None:
            by_context.setdefault(r.cell.context, []).append(r)
    if not by_context:
        ax.text(0.5, 0.5, "no decode cell measured", ha="center", va="center")
        return _png(fig)
    for i, (context, cells) in enumerate(sorted(by_context.items())):
        cells.sort(key=lambda r: r.cell.batch)
        color = _COLORS[i % len(_COLORS)]
        batches = [r.cell.batch for r in cells]
        measured = [r.numbers.tokens_per_second for r in cells if r.numbers]
        predicted = [r.cell.batch / r.numbers.predicted_step_seconds for r in cells if r.numbers]
        ax.plot(batches, measured, "o-", color=color, label=f"context {context}: measured")
        ax.plot(batches, predicted, ":", color=color, label=f"context {context}: roofline")
        for r, tps in zip(cells, measured, strict=True):
            if Mark.KNEE in r.marks:
                ax.scatter([r.cell.batch], [tps], s=260, facecolors="none", edgecolors="#000000")
                ax.annotate(
                    "knee",
                    (r.cell.batch, tps),
                    xytext=(6, -14),
                    textcoords="offset points",
                    fontsize=8,
                )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    batches = sorted({r.cell.batch for cells in by_context.values() for r in cells})
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.minorticks_off()
    ax.set_xlabel("decode batch (sequences per step)")
    ax.set_ylabel("tokens/s")
    ax.set_title(f"Decode throughput: {_title(report)}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncols=max(1, math.ceil(len(by_context) / 3)))
    return _png(fig)
