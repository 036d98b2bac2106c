"""gpu-check's summary: what each step did, and the measured numbers as Markdown ready to paste
into BENCHMARKS.md. Stdlib and gpumetrics' catalog only (scripts/gpu-check puts the checkout on
the path); reads the files the steps left in the work directory:

  env/versions.json            machine, driver, torch, nvidia-ml-py, transformers
  profile-short.json           `gpumetrics profile --json` (schema gpumetrics.profile/v1), and
  profile-long.json            the same at the longer context
  worker.json                  `gpumetrics worker --json`
  hf-generate.json             scripts/hf_generate_check.py
  fast_decode.json             scripts/gpu_fast_decode_check.py (shown as it reports itself)
  trace-phases.txt, trace/     the NVML/GPM trace: achieved numbers and per-phase medians

Ratios: worker tokens/s at the HF batch (64 on a GPU) and the shortest profiled context over HF
`generate`'s decode-only tokens/s at that batch (and over its end-to-end tokens/s, prefill
included, which is how shared/h200-reference/hf-generate.json was read).
"""

from __future__ import annotations

import itertools
import json
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gpumetrics.catalog import gpu as g

__all__ = ["gpm_medians", "hf_ratio", "profile_rows", "summary_lines"]

#: Phase line of a phases file: `<epoch> <phase> [key=value ...]`.
PHASE_LINE = re.compile(r"^(\d+(?:\.\d+)?) ([A-Za-z_][A-Za-z0-9_]*)((?: [A-Za-z_]\w*=\S+)*)$")
#: A trace member's name: `sNNNN_<epoch>.prom`.
SCRAPE_NAME = re.compile(r"^s(\d{4,})_(\d+(?:\.\d+)?)\.prom$")
#: The signals summarised per trace phase, named from the catalog.
_GPM = (
    ("tensor", g.GPM_TENSOR_ACTIVE.name),
    ("DRAM", g.GPM_DRAM_ACTIVE.name),
    ("SM", g.GPM_SM_ACTIVE.name),
    ("naive", g.GPU_UTILIZATION_NAIVE.name),
    ("W", g.GPU_POWER.name),
)
_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} (\S+)$")


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _num(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def parse_phases(text: str) -> list[tuple[float, str, dict[str, str]]]:
    """The phase lines (comments and blank lines skipped); ValueError on a malformed one."""
    marks = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = PHASE_LINE.match(line)
        if match is None:
            raise ValueError(f"phases line {number} is not '<epoch> <phase> [k=v ...]': {raw!r}")
        extra = dict(kv.split("=", 1) for kv in match.group(3).split())
        marks.append((float(match.group(1)), match.group(2), extra))
    if [m[0] for m in marks] != sorted(m[0] for m in marks):
        raise ValueError("phases lines are not in time order")
    return marks


def _scrape_values(text: str, metric: str) -> list[float]:
    values = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1) == metric and 'gpu="0"' in match.group(2):
            values.append(float(match.group(3)))
    return values


def gpm_medians(
    scrapes: Iterable[tuple[float, str]],
    marks: Sequence[tuple[float, str, Mapping[str, str]]],
    *,
    settle: float = 1.0,
) -> dict[str, dict[str, float]]:
    """Median of each GPM/naive/power gauge of GPU 0 over the scrapes inside each busy phase
    (`gemm`, `copy`, `tiny_kernels`, and `idle`), from `settle` s after the phase starts (at most
    a quarter of the phase)."""
    spans = {}
    for (start, name, _), (end, _, _) in itertools.pairwise(marks):
        if name in ("idle", "gemm", "copy", "tiny_kernels") and name not in spans:
            spans[name] = (start + min(settle, (end - start) / 4), end)
    bucket: dict[str, dict[str, list[float]]] = {n: {k: [] for k, _ in _GPM} for n in spans}
    for at, text in scrapes:
        for name, (lo, hi) in spans.items():
            if lo <= at < hi:
                for key, metric in _GPM:
                    bucket[name][key].extend(_scrape_values(text, metric))
    return {
        name: {k: statistics.median(v) for k, v in values.items() if v}
        for name, values in bucket.items()
    }


def read_trace(trace_dir: Path) -> list[tuple[float, str]]:
    """(epoch, exposition text) of every scrape file in `trace_dir`, in time order."""
    found = []
    for path in trace_dir.glob("s*.prom"):
        match = SCRAPE_NAME.match(path.name)
        if match:
            found.append((float(match.group(2)), path.read_text()))
    return sorted(found, key=lambda s: s[0])


def profile_rows(*reports: Any) -> list[dict[str, Any]]:
    """One dict per measured or skipped cell of `gpumetrics profile --json` reports, by context
    then batch."""
    rows = []
    for report in reports:
        if not isinstance(report, dict):
            continue
        for cell in report.get("cells", []):
            if cell.get("phase", "decode") != "decode":
                continue
            rows.append(cell)
    return sorted(rows, key=lambda c: (c.get("context", 0), c.get("batch", 0)))


def hf_ratio(rows: Sequence[Mapping[str, Any]], hf: Any) -> tuple[str, float, float, float]:
    """(batch label, worker tokens/s, HF decode tokens/s, HF end-to-end tokens/s) at the largest
    HF batch that the profile also measured, at the profile's shortest context; ValueError when
    there is nothing to compare."""
    if not isinstance(hf, dict):
        raise ValueError("no HF generate results")
    measured = {
        row["batch"]: row
        for row in rows
        if row.get("status") == "ok"
        and row.get("context") == min(r.get("context", 0) for r in rows)
    }
    for key in sorted((k for k in hf if k.startswith("eager_b")), key=lambda k: -hf[k]["batch"]):
        batch = hf[key]["batch"]
        if batch in measured:
            row = measured[batch]
            return (
                f"b{batch}/c{row['context']}",
                float(row["tokens_per_second"]),
                float(hf[key]["decode_tok_s"]),
                float(hf[key]["tok_s"]),
            )
    raise ValueError("no batch size measured by both the profile and HF generate")


def _machine(work: Path) -> str:
    v = _load(work / "env" / "versions.json") or {}
    cuda = v.get("cuda") or {}
    parts = [
        cuda.get("name") or "no CUDA device",
        f"driver {v.get('driver') or '?'}",
        f"CUDA {cuda.get('version') or '?'}",
        f"torch {v.get('torch') or '?'}",
        f"Python {v.get('python') or '?'}",
        f"nvidia-ml-py {v.get('nvidia-ml-py') or '?'}",
        f"transformers {v.get('transformers') or 'absent'}",
        f"gpumetrics {v.get('gpumetrics_commit') or '?'}",
    ]
    return ", ".join(parts)


def _profile_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| context | batch | step p50 ms | roof ms | tokens/s | MBU | MFU | MBU (achievable) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        head = f"| {c.get('context')} | {c.get('batch')} |"
        if c.get("status") != "ok":
            lines.append(f"{head} skipped: {c.get('skip_reason') or c.get('status')} ||||||")
            continue
        p50 = c.get("step_seconds_p50")
        roof = c.get("predicted_step_seconds")
        p50_ms = _num(p50 * 1e3 if p50 else None, 2)
        roof_ms = _num(roof * 1e3 if roof else None, 3)
        lines.append(
            f"{head} {p50_ms} | {roof_ms} | {_num(c.get('tokens_per_second'))} | "
            f"{_pct(c.get('mbu'))} | {_pct(c.get('mfu'))} | {_pct(c.get('mbu_achievable'))} |"
        )
    return lines


def _trace_lines(work: Path) -> list[str]:
    phases_path = work / "trace-phases.txt"
    if not phases_path.exists():
        return ["trace: not recorded"]
    try:
        marks = parse_phases(phases_path.read_text())
    except ValueError as exc:
        return [f"trace: {exc}"]
    numbers = {k: v for _, _, extra in marks for k, v in extra.items()}
    scrapes = read_trace(work / "trace")
    lines = [
        f"trace: {len(scrapes)} scrapes; matmul {numbers.get('tflops', '?')} TFLOP/s, copy "
        f"{numbers.get('TBps_rw', '?')} TB/s (read + write), {numbers.get('kernels', '?')} tiny "
        "kernels",
        "",
        "| phase | tensor active | DRAM active | SM active | naive util | power W |",
        "|---|---|---|---|---|---|",
    ]
    for name, med in gpm_medians(scrapes, marks).items():
        cells = [f"{med[k]:.4g}" if k in med else "n/a" for k, _ in _GPM]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _fast_lines(fast: Any) -> list[str]:
    """scripts/gpu_fast_decode_check.py's verdict and speed cells (its own JSON format)."""
    if not isinstance(fast, dict):
        return []
    ok = fast.get("ok")
    verdict = "OK" if ok is True else "FAIL" if ok is False else "?"
    lines = ["", f"### Fast decode self-check: {verdict} (scripts/gpu_fast_decode_check.py)", ""]
    cells = [c for c in fast.get("cells", []) if isinstance(c, dict)]
    if cells:
        lines += [
            "| context | batch | step ms | replay ms | tokens/s | MBU | roof ms |",
            "|---|---|---|---|---|---|---|",
        ]
    for c in cells:
        if "step_ms" not in c:
            lines.append(f"| {c.get('context')} | {c.get('batch')} | {c.get('skipped', '?')} |||||")
            continue
        lines.append(
            f"| {c.get('context')} | {c.get('batch')} | {_num(c.get('step_ms'), 3)} | "
            f"{_num(c.get('replay_ms'), 3)} | {_num(c.get('tokens_per_s'))} | {_pct(c.get('mbu'))}"
            f" | {_num(c.get('roofline_ms'), 3)} |"
        )
    for ref in fast.get("reference", []):
        if isinstance(ref, dict):
            lines.append(
                f"reference path b{ref.get('batch')}/c{ref.get('context')}: "
                f"{_num(ref.get('step_ms'), 2)} ms a step"
            )
    return lines


def summary_lines(work: Path, steps: Sequence[Mapping[str, Any]], header: str) -> list[str]:
    """The whole summary: header, step table, then the Markdown results."""
    lines = [header, f"machine: {_machine(work)}", "", "steps (priority order):"]
    for step in steps:
        reason = f"  ({step['reason']})" if step.get("reason") else ""
        lines.append(
            f"  {step['name']:<14} {step['status']:<8} {step.get('seconds', 0):7.1f} s{reason}"
        )
    rows = profile_rows(_load(work / "profile-short.json"), _load(work / "profile-long.json"))
    lines += ["", "### Reference worker decode, `gpumetrics profile --calibrate`", ""]
    lines += _profile_table(rows) if rows else ["no profile results"]
    hf = _load(work / "hf-generate.json")
    lines.append("")
    if isinstance(hf, dict) and "skipped" in hf:
        lines.append(f"HF generate: skipped ({hf['skipped']})")
    else:
        try:
            label, worker, hf_decode, hf_total = hf_ratio(rows, hf)
            lines.append(
                f"HF `generate` (eager, {hf.get('transformers')}, prompt {hf.get('prompt')}, "
                f"{hf.get('new_tokens')} new) vs worker at {label}: worker {worker:,.0f} tokens/s, "
                f"HF decode {hf_decode:,.0f} tokens/s -> {worker / hf_decode:.2f}x "
                f"(end-to-end HF {hf_total:,.0f} tokens/s -> {worker / hf_total:.2f}x); "
                "target >= 10x"
            )
        except (ValueError, KeyError, TypeError) as exc:
            lines.append(f"HF generate: no ratio ({exc})")
        if isinstance(hf, dict):
            for key in sorted(k for k in hf if k.startswith("eager_b")):
                r = hf[key]
                lines.append(
                    f"  HF {key}: decode step {r['decode_step_ms']:.2f} ms, "
                    f"{r['decode_tok_s']:,.0f} tokens/s, decode MBU {_pct(r.get('decode_mbu'))}; "
                    f"end-to-end {r['tok_s']:,.0f} tokens/s"
                )
    worker = _load(work / "worker.json")
    if isinstance(worker, dict):
        w = worker
        lines.append(
            f"worker chat load: {w.get('requests')} turns, {_num(w.get('tokens_per_second'))} "
            f"tokens/s, mean batch {_num(w.get('mean_batch_sequences'), 1)}, prefix hit ratio "
            f"{_num(w.get('prefix_hit_ratio'), 2)}, attention {w.get('attention_path')}"
        )
    lines += _fast_lines(_load(work / "fast_decode.json"))
    lines += ["", *_trace_lines(work)]
    return lines
