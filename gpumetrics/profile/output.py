"""Writing a report's files: JSON, CSV, the roofline PNG and the self-contained HTML.

matplotlib (the `plot` extra) is imported only when a plot or the HTML page is asked for; the
HTML page is still written without it, saying why it has no plots, while `--plot` needs it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..extras import MissingExtraError, require
from .measure import DECODE
from .report import ProfileReport, report_to_dict
from .report_csv import report_to_csv
from .report_html import report_to_html

__all__ = ["PlotsUnavailableError", "plots", "write_outputs"]


class PlotsUnavailableError(RuntimeError):
    """matplotlib is not installed; the message says how to install it."""


def plots(report: ProfileReport) -> list[tuple[str, bytes]]:
    """(caption, PNG bytes) of the report's plots: the roofline, and decode tokens/s against
    batch when decode cells ran. PlotsUnavailableError without matplotlib."""
    try:
        require("plot", "plotting the report")
    except MissingExtraError as exc:
        raise PlotsUnavailableError(str(exc)) from None
    from .plot import roofline_png, throughput_png  # noqa: PLC0415 - matplotlib, on demand

    images = [("Roofline: achieved FLOP/s against arithmetic intensity", roofline_png(report))]
    if any(r.numbers is not None and r.cell.phase == DECODE for r in report.results):
        caption = "Decode tokens/s against batch (dotted: what the roofline allows)"
        images.append((caption, throughput_png(report)))
    return images


def write_outputs(
    report: ProfileReport,
    *,
    json_path: Path | None = None,
    csv_path: Path | None = None,
    plot_path: Path | None = None,
    html_path: Path | None = None,
) -> list[Path]:
    """Write the files asked for; returns their paths. PlotsUnavailableError when `plot_path` is
    given and matplotlib is missing (the other files are written first)."""
    written = []
    if json_path is not None:
        json_path.write_text(json.dumps(report_to_dict(report), indent=2) + "\n")
        written.append(json_path)
    if csv_path is not None:
        csv_path.write_text(report_to_csv(report))
        written.append(csv_path)
    if plot_path is None and html_path is None:
        return written
    images: list[tuple[str, bytes]] = []
    missing = None
    try:
        images = plots(report)
    except PlotsUnavailableError as exc:
        missing = str(exc)
    if html_path is not None:
        html_path.write_text(report_to_html(report, images, missing_plots=missing))
        written.append(html_path)
    if plot_path is not None:
        if not images:
            raise PlotsUnavailableError(missing or "no plot")
        plot_path.write_bytes(images[0][1])
        written.append(plot_path)
    return written
