"""`gpumetrics profile --html FILE`: one self-contained HTML page.

The page holds the header (model, device, roofs, KV pool), the verdict, the plots as inline
`data:image/png;base64` images, and the cell table (the same strings and legend as the
terminal table),
with inline CSS only: no scripts, fonts, stylesheets or images from anywhere else, so the file
can be mailed or attached to a ticket as is.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

from .report import SCHEMA, ProfileReport
from .table import LEGEND, attach_rows, cell_row, columns, has_gpu_activity, header_lines

__all__ = ["report_to_html"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; color: #1d1d1f; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.meta { color: #555; font-size: .9rem; margin: .1rem 0; }
.verdict li { margin: .35rem 0; line-height: 1.4; }
table { border-collapse: collapse; font-size: .8rem; width: 100%; }
th, td { padding: .3rem .45rem; border-bottom: 1px solid #e5e5e5; text-align: right;
         white-space: nowrap; }
th { background: #f5f5f7; position: sticky; top: 0; }
td:first-child, th:first-child, td.text { text-align: left; }
tr.skipped td { color: #999; font-style: italic; }
td.memory { color: #b3261e; } td.compute { color: #1e7b34; }
td.marks, th:last-child { text-align: left; } td.marks { font-weight: 600; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .85rem; }
footer { color: #888; font-size: .75rem; margin-top: 2rem; }
"""


def _table(report: ProfileReport) -> str:
    gpu = has_gpu_activity(report)
    names = columns(gpu)
    head = "".join(f"<th>{escape(c)}</th>" for c in names)
    rows = []
    for result in report.results:
        cells = cell_row(result, gpu=gpu)
        if result.numbers is None:
            rows.append(
                f'<tr class="skipped"><td>{escape(cells[0])}</td>'
                f'<td class="text" colspan="{len(names) - 2}">{escape(cells[1])}</td>'
                f'<td class="marks">{escape(cells[-1])}</td></tr>'
            )
            continue
        tds = []
        for column, value in zip(names, cells, strict=True):
            cls = {"bound": value, "marks": "marks"}.get(column, "")
            attr = f' class="{escape(cls)}"' if cls else ""
            tds.append(f"<td{attr}>{escape(value)}</td>")
        rows.append(f"<tr>{''.join(tds)}</tr>")
    return f'<table id="cells"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def report_to_html(
    report: ProfileReport,
    images: Sequence[tuple[str, bytes]] = (),
    *,
    missing_plots: str | None = None,
) -> str:
    """The page for `report`, with `images` as (caption, PNG bytes) embedded inline;
    `missing_plots` explains why there are none (e.g. matplotlib not installed)."""
    title = "gpumetrics profile"
    if report.model is not None:
        title += f": {report.model.name}"
    if report.device is not None:
        title += f" on {report.device.name}"
    elif report.attach is not None:
        title += f": {report.attach.url}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        *(f'<p class="meta">{escape(line)}</p>' for line in header_lines(report)),
        "<h2>Verdict</h2>",
        '<ul class="verdict">',
        *(f"<li>{escape(line)}</li>" for line in report.verdict),
        "</ul>",
    ]
    if images or missing_plots:
        parts.append("<h2>Plots</h2>")
    for caption, png in images:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>"
        )
    if missing_plots:
        parts.append(f'<p class="meta">{escape(missing_plots)}</p>')
    if report.results:
        parts += ["<h2>Cells</h2>", _table(report), f'<p class="meta legend">{escape(LEGEND)}</p>']
    if report.attach is not None:
        rows = "".join(
            f'<tr><td class="text">{escape(k)}</td><td>{escape(v)}</td></tr>'
            for k, v in attach_rows(report.attach.summary)
        )
        parts += [
            f"<h2>Engine window: {escape(report.attach.url)}</h2>",
            f'<table id="attach" style="width:auto"><tbody>{rows}</tbody></table>',
        ]
    parts += [
        f"<footer>{escape(SCHEMA)} report, created {escape(report.created)}. Definitions: "
        "docs/profile-schema.md. Step time: engine step wall time; FLOPs and bytes: the cost "
        "model over each step's scheduled work; MFU/MBU against the reference roofs.</footer>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
