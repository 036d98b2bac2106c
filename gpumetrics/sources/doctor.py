"""`gpumetrics doctor`'s findings folded for reading: one row per distinct check.

The probes (`nvml_doctor`, `ib_doctor`) report one `Check` per GPU per aspect, so an
8-GPU node prints nine identical rows per GPU. `group_checks` folds checks that differ only
in their GPU index into one whose area names the GPUs (`gpus 0-7`); a device row folds on
its name, its UUID left to `doctor --json`, which keeps every check as probed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..samples import Check

__all__ = ["group_checks", "index_span"]

_GPU_AREA = re.compile(r"gpu (\d+)")
_UUID = re.compile(r" \((?:GPU|MIG)-[0-9A-Fa-f-]+\)$")

_Key = tuple[str, str, str, str]  # name, status, detail, hint


def index_span(indexes: Sequence[int]) -> str:
    """`[0, 1, 2, 3, 5]` -> `0-3, 5` (sorted, runs of consecutive indexes joined)."""
    runs: list[list[int]] = []
    for index in sorted(set(indexes)):
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def group_checks(checks: Sequence[Check]) -> list[Check]:
    """One check per distinct (name, status, detail, hint) across GPUs, in first-seen order;
    checks outside a `gpu N` area pass through unchanged."""
    out: list[Check | _Key] = []
    gpus: dict[_Key, list[int]] = {}
    for check in checks:
        match = _GPU_AREA.fullmatch(check.area)
        if match is None:
            out.append(check)
            continue
        detail = _UUID.sub("", check.detail) if check.name == "device" else check.detail
        key = (check.name, check.status, detail, check.hint)
        if key not in gpus:
            gpus[key] = []
            out.append(key)
        gpus[key].append(int(match.group(1)))
    return [item if isinstance(item, Check) else _folded(item, gpus[item]) for item in out]


def _folded(key: _Key, indexes: list[int]) -> Check:
    name, status, detail, hint = key
    area = f"gpu {indexes[0]}" if len(indexes) == 1 else f"gpus {index_span(indexes)}"
    return Check(area, name, status, detail, hint)
