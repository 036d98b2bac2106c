"""`gpumetrics profile --csv FILE`: one row per cell, the JSON cell fields flattened.

Columns are `CELL_FIELDS` with `marks` joined by ";" and `gpu` split into `gpu_tensor_active`,
`gpu_dram_active`, `gpu_sm_active`, `gpu_utilization_naive`, `gpu_seconds`; a missing value
is an empty field. Base units (seconds, FLOP/s, bytes/s, ratios 0..1), as in the JSON.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Final

from .report import CELL_FIELDS, ProfileReport, cell_to_dict

__all__ = ["CSV_COLUMNS", "report_to_csv"]

_GPU_FIELDS = ("tensor_active", "dram_active", "sm_active", "utilization_naive", "seconds")

#: The CSV header, in order.
CSV_COLUMNS: Final = tuple(f for f in CELL_FIELDS if f != "gpu") + tuple(
    f"gpu_{f}" for f in _GPU_FIELDS
)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def report_to_csv(report: ProfileReport) -> str:
    """The cells of `report` as CSV text (header + one row per cell, skipped ones included)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for result in report.results:
        cell = cell_to_dict(result)
        gpu = cell.pop("gpu") or {}
        cell["marks"] = ";".join(cell["marks"])
        row = [_text(cell[c]) for c in CSV_COLUMNS if not c.startswith("gpu_")]
        row += [_text(gpu.get(f)) for f in _GPU_FIELDS]
        writer.writerow(row)
    return out.getvalue()
