"""A sizing report as text lines, JSON, CSV and one self-contained HTML page.

The verdict and the table cells are the same strings everywhere; the HTML page holds the plot
as an inline `data:image/png;base64` image and inline CSS only (nothing fetched), like
`gpumetrics profile --html`.
"""

from __future__ import annotations

import base64
import csv
import io
import math
from collections.abc import Mapping
from html import escape
from typing import Final

from ..units import format_bytes, format_si
from .sizing import SizingReport, SizingRow

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "cells",
    "report_to_csv",
    "report_to_dict",
    "report_to_html",
    "summary_lines",
    "verdict_lines",
]

SCHEMA: Final = "gpumetrics.kv-size/1"
COLUMNS: Final = (
    "blocks",
    "tokens",
    "KV",
    "GPUs",
    "hit ratio",
    "token hit",
    "of max",
    "prefill saved",
    "",
)
_FIELDS: Final = (
    "capacity_blocks",
    "capacity_tokens",
    "kv_bytes",
    "gpus",
    "hit_ratio",
    "token_hit_ratio",
    "share_of_max",
    "max_hit_ratio",
    "prefill_flops_saved_per_s",
    "reaches_target",
    "is_target",
)


def _gpus(value: float | None) -> str:
    if value is None:
        return "-"
    return "weights do not fit" if math.isinf(value) else f"{value:.3g}"


def cells(row: SizingRow) -> list[str]:
    """The table's strings for one row (COLUMNS order)."""
    mark = "<- target" if row.is_target else ("*" if row.reaches_target else "")
    return [
        f"{row.capacity_blocks:,}",
        format_si(row.capacity_tokens),
        format_bytes(row.kv_bytes) if row.kv_bytes is not None else "-",
        _gpus(row.gpus),
        f"{row.hit_ratio:.4f}",
        f"{row.token_hit_ratio:.4f}",
        f"{row.share_of_max:.1%}",
        format_si(row.prefill_flops_saved_per_s, "FLOP/s")
        if row.prefill_flops_saved_per_s is not None
        else "-",
        mark,
    ]


def summary_lines(report: SizingReport) -> list[str]:
    """The trace and the model in a few lines."""
    c = report.curve
    rate = report.request_rate
    sampled = (
        f"; SHARDS sample rate {c.sample_rate:.4g} ({c.sampled_references:,} lookups kept, "
        "counts estimated)"
        if c.sample_rate < 1
        else ""
    )
    lines = [
        f"{c.requests:,} requests, {int(c.queried_blocks):,} block lookups of "
        f"{c.block_size} tokens, {c.distinct_blocks:,.0f} distinct blocks"
        + (f", {rate:.3g} requests/s over {c.duration_s:,.0f} s" if rate else "")
        + sampled,
        f"infinite cache: hit ratio {c.max_hit_ratio:.4f} of blocks, "
        f"{c.max_token_hit_ratio:.4f} of prompt tokens; saturates at {c.saturation:,.0f} blocks",
    ]
    k = report.costs
    if k is not None:
        tp = f" x TP{k.tp}" if k.tp > 1 else ""
        line = f"{k.model}: {format_bytes(k.kv_bytes_per_token)} of {k.kv_dtype} KV a token{tp}"
        if k.gpu is not None and k.group_tokens is not None:
            line += (
                f"; one {k.gpu}{tp} holds {k.group_tokens:,} tokens after {k.dtype} weights "
                f"at {k.memory_fraction:.0%} of memory"
            )
        lines.append(line)
    return lines


def verdict_lines(report: SizingReport) -> list[str]:
    """What capacity reaches the target, and what twice that buys."""
    row, c = report.target_row, report.curve
    if row is None:
        return ["no capacity hits at all: every block in the trace is seen once"]
    priced = ""
    if row.kv_bytes is not None:
        priced = f" = {format_bytes(row.kv_bytes)} of KV"
    k = report.costs
    if row.gpus is not None and k is not None:
        tp = f" at TP{k.tp}" if k.tp > 1 else ""
        priced += f" = {_gpus(row.gpus)} {k.gpu}{tp} after weights"
    saved = ""
    if row.prefill_flops_saved_per_s is not None:
        saved = f"; saves {format_si(row.prefill_flops_saved_per_s, 'FLOP/s')} of prefill"
    lines = [
        f"verdict: {report.target:.0%} of the infinite-cache hit ratio ({row.hit_ratio:.4f} of "
        f"{c.max_hit_ratio:.4f}) needs {row.capacity_blocks:,} blocks "
        f"({format_si(row.capacity_tokens)} tokens){priced}{saved}"
    ]
    doubled = report.doubled_row
    if doubled is not None:
        lines.append(
            f"twice that ({doubled.capacity_blocks:,} blocks) reaches {doubled.hit_ratio:.4f} "
            f"({doubled.share_of_max:.1%} of the maximum)"
        )
    return lines


def _row_dict(row: SizingRow) -> dict[str, object]:
    out: dict[str, object] = {name: getattr(row, name) for name in _FIELDS}
    if row.gpus is not None and math.isinf(row.gpus):
        out["gpus"] = None  # JSON has no infinity: the weights do not fit
    return out


def report_to_dict(report: SizingReport, source: Mapping[str, object]) -> dict[str, object]:
    """The report as JSON-ready data; `source` describes the trace file (path, format, ...)."""
    c, k = report.curve, report.costs
    return {
        "schema": SCHEMA,
        "trace": {
            **source,
            "requests": c.requests,
            "block_lookups": int(c.queried_blocks),
            "prompt_tokens": int(c.queried_tokens),
            "distinct_blocks": c.distinct_blocks,
            "block_size": c.block_size,
            "duration_s": c.duration_s,
            "request_rate": report.request_rate,
            "sample_rate": c.sample_rate,
            "sampled_lookups": c.sampled_references,
        },
        "max_hit_ratio": c.max_hit_ratio,
        "max_token_hit_ratio": c.max_token_hit_ratio,
        "saturation_blocks": c.saturation,
        "target": report.target,
        "target_row": _row_dict(report.target_row) if report.target_row else None,
        "doubled_row": _row_dict(report.doubled_row) if report.doubled_row else None,
        "costs": None if k is None else {name: getattr(k, name) for name in k.__dataclass_fields__},
        "verdict": verdict_lines(report),
        "rows": [_row_dict(r) for r in report.rows],
    }


def report_to_csv(report: SizingReport) -> str:
    """One line per row, the JSON row fields as columns (empty where not given)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_FIELDS)
    for row in report.rows:
        values = _row_dict(row)
        writer.writerow(["" if values[f] is None else values[f] for f in _FIELDS])
    return buffer.getvalue()


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #1d1d1f; padding: 0 1rem; }
h1 { font-size: 1.5rem; } .meta { color: #555; font-size: .9rem; margin: .1rem 0; }
.verdict { font-weight: 600; margin: .4rem 0; }
table { border-collapse: collapse; font-size: .85rem; width: 100%; margin-top: 1rem; }
th, td { padding: .3rem .45rem; border-bottom: 1px solid #e5e5e5; text-align: right; }
th { background: #f5f5f7; } tr.target td { background: #eef6ee; font-weight: 600; }
figure img { max-width: 100%; border: 1px solid #eee; }
"""


def report_to_html(report: SizingReport, title: str, png: bytes | None = None) -> str:
    """One self-contained page: summary, verdict, the curve, the table."""
    meta = "".join(f'<p class="meta">{escape(line)}</p>' for line in summary_lines(report))
    verdict = "".join(f'<p class="verdict">{escape(line)}</p>' for line in verdict_lines(report))
    figure = ""
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        figure = (
            f'<figure><img alt="hit ratio against KV capacity" '
            f'src="data:image/png;base64,{data}"></figure>'
        )
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        f"<tr{' class=target' if r.is_target else ''}>"
        + "".join(f"<td>{escape(v)}</td>" for v in cells(r))
        + "</tr>"
        for r in report.rows
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>{meta}{verdict}{figure}"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f"<footer class=meta>gpumetrics kv-size ({SCHEMA})</footer></body></html>\n"
    )
