"""The worker summary as table rows (`gpumetrics worker` without --json)."""

from __future__ import annotations

from ..units import format_si
from .summary import WorkerSummary

__all__ = ["summary_rows"]

#: Summary fields printed with an SI prefix (`9.24 G`), not every digit.
_SI_FIELDS = frozenset({"flops"})


def summary_rows(summary: WorkerSummary) -> list[tuple[str, str]]:
    """(name, value) rows for a table: counts with thousands separators, FLOPs with an SI
    prefix (`9.24 G`), other floats (seconds, ratios, rates) to three decimals."""
    rows = []
    for key, value in summary.as_dict().items():
        if key in _SI_FIELDS and isinstance(value, int | float):
            text = format_si(float(value))
        elif isinstance(value, float):
            text = f"{value:,.3f}"
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = value
        rows.append((key, text))
    return rows
