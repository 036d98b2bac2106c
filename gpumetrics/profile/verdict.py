"""The verdict: what bounds each regime, what would change it, what the KV budget allows —
in plain words, with the numbers that back each sentence."""

from __future__ import annotations

from collections.abc import Sequence

from ..units import format_bytes, format_si
from .analysis import CellResult, GroupSummary, Roofs
from .measure import DECODE, KvPool, percentile

__all__ = ["OVERHEAD_FRACTION", "verdict"]

#: Below this median share of the roofline the steps are overhead-bound (neither roof binds).
OVERHEAD_FRACTION = 0.25


def verdict(
    results: Sequence[CellResult],
    groups: Sequence[GroupSummary],
    roofs: Roofs,
    pool: KvPool,
    *,
    gpu_note: str | None = None,
) -> list[str]:
    """Sentences, most important first: one per group, then overhead, GPU counters, skips."""
    ridge = roofs.reference.ridge
    by_group: dict[tuple[str, int], list[CellResult]] = {}
    for r in results:
        by_group.setdefault((r.cell.phase, r.cell.context), []).append(r)
    lines = []
    for g in groups:
        cells = sorted(
            (r for r in by_group.get((g.phase, g.context), []) if r.numbers is not None),
            key=lambda r: r.cell.batch if g.phase == DECODE else r.cell.chunk or 0,
        )
        if not cells:
            lines.append(f"{_name(g)}: no cell ran (see the skipped cells below).")
            continue
        if g.phase == DECODE:
            lines.append(_decode_line(g, cells, ridge, pool))
        else:
            lines.append(_prefill_line(g, cells, ridge))
    lines.extend(_overhead(results, roofs))
    lines.extend(_gpu_lines(results, gpu_note))
    skipped = [r for r in results if r.skipped is not None]
    if skipped:
        reasons = "; ".join(f"{r.cell.label}: {r.skipped}" for r in skipped[:4])
        more = f" (and {len(skipped) - 4} more)" if len(skipped) > 4 else ""
        lines.append(f"{len(skipped)} cell(s) skipped — {reasons}{more}.")
    return lines


def _name(g: GroupSummary) -> str:
    return (
        f"decode at context {g.context}" if g.phase == DECODE else f"prefill at context {g.context}"
    )


def _span(cells: Sequence[CellResult]) -> str:
    low = min(r.numbers.intensity for r in cells if r.numbers)
    high = max(r.numbers.intensity for r in cells if r.numbers)
    return f"{low:.3g} FLOP/B" if low == high else f"{low:.3g}–{high:.3g} FLOP/B"


def _decode_line(g: GroupSummary, cells: Sequence[CellResult], ridge: float, pool: KvPool) -> str:
    top = cells[-1].cell.batch
    parts = []
    if g.first_compute_bound is None:
        parts.append(
            f"memory-bound at every swept batch up to {top} (intensity {_span(cells)} vs "
            f"ridge {ridge:.3g})"
        )
        if g.crossover_batch is None:
            parts.append(
                "KV reads grow with the batch as fast as FLOPs do, so no batch size reaches "
                "the ridge; a shorter context, fp8 KV or fewer KV heads would"
            )
        elif g.max_batch_fits is not None and g.crossover_batch > g.max_batch_fits:
            parts.append(
                f"the cost model puts the ridge at batch {g.crossover_batch:,}, but the KV "
                f"budget holds only {g.max_batch_fits:,} sequences of {g.context} tokens: KV "
                "capacity binds first"
            )
        else:
            parts.append(f"batch {g.crossover_batch:,} or more would reach the ridge (cost model)")
    else:
        parts.append(
            f"compute-bound from batch {g.first_compute_bound} (intensity {_span(cells)} vs "
            f"ridge {ridge:.3g}); smaller batches are memory-bound and leave FLOPs idle"
        )
    by_batch = {r.cell.batch: r for r in cells}
    if g.knee is not None and g.knee_gain is not None:
        tps = by_batch[g.knee].numbers
        assert tps is not None
        parts.append(
            f"throughput stops scaling past batch {g.knee} ({tps.tokens_per_second:,.0f} "
            f"tokens/s; {g.knee_gain:+.0%} per doubling beyond it)"
        )
    elif g.top_gain is not None:
        parts.append(
            f"throughput still scales at batch {top} ({g.top_gain:+.0%} tokens/s per "
            "doubling): larger batches would pay"
        )
    if g.max_batch_fits is not None:
        holds = f"holds batch ≤ {g.max_batch_fits:,}" if g.max_batch_fits else "holds no sequence"
        parts.append(
            f"the KV budget ({format_bytes(pool.budget_tokens * pool.bytes_per_token)}, "
            f"{pool.budget_source}) {holds} at this context (prompt plus the tokens decoded "
            "in the cell)"
        )
    return f"{_name(g)}: " + "; ".join(parts) + "."


def _prefill_line(g: GroupSummary, cells: Sequence[CellResult], ridge: float) -> str:
    parts = []
    if g.first_compute_bound is None:
        parts.append(f"memory-bound at every swept chunk (intensity {_span(cells)} vs {ridge:.3g})")
    else:
        n = next(r.numbers for r in cells if r.cell.chunk == g.first_compute_bound)
        assert n is not None
        parts.append(f"compute-bound from chunk {g.first_compute_bound} (MFU {n.mfu:.1%} there)")
    if g.knee is not None and g.knee_gain is not None:
        parts.append(f"tokens/s stop scaling past chunk {g.knee} ({g.knee_gain:+.0%} per doubling)")
    elif g.top_gain is not None:
        parts.append(f"larger chunks still pay ({g.top_gain:+.0%} tokens/s per doubling)")
    return f"{_name(g)}: " + "; ".join(parts) + "."


def _overhead(results: Sequence[CellResult], roofs: Roofs) -> list[str]:
    fractions = [r.numbers.roofline_fraction for r in results if r.numbers is not None]
    if not fractions:
        return []
    median = percentile(fractions, 50)
    best = max(fractions)
    if median >= OVERHEAD_FRACTION:
        return [
            f"Steps run at {median:.0%} of the roofline time (median; best {best:.0%}): the "
            "roofs above bind."
        ]
    return [
        f"Steps run at {median:.0%} of the roofline-predicted time (median; best {best:.0%}): "
        "at these sizes the step is overhead-bound (Python, per-layer kernel launches, "
        "attention bookkeeping), so neither roof is reached; the bound column says which roof "
        f"would bind once steps are large enough (reference roofs: "
        f"{format_si(roofs.reference.peak_flops, 'FLOP/s')}, "
        f"{format_si(roofs.reference.bandwidth, 'B/s')})."
    ]


def _gpu_lines(results: Sequence[CellResult], gpu_note: str | None) -> list[str]:
    sampled = [
        (r, r.numbers.gpu) for r in results if r.numbers is not None and r.numbers.gpu is not None
    ]
    if not sampled:
        return [f"GPU counters (NVML/GPM): {gpu_note or 'not available'}."]
    lines = []
    for r, gpu in sampled:
        n = r.numbers
        assert n is not None
        if gpu.utilization_naive is None or gpu.tensor_active is None:
            continue
        if gpu.utilization_naive - gpu.tensor_active > 0.5:
            dram = f", DRAM active {gpu.dram_active:.0%}" if gpu.dram_active is not None else ""
            lines.append(
                f"{r.cell.label}: naive utilization reads {gpu.utilization_naive:.0%} while "
                f"tensor pipes are busy {gpu.tensor_active:.0%} of the time{dram} (analytic "
                f"MFU {n.mfu:.1%}, MBU {n.mbu:.1%}, {n.bound.value}-bound): 'busy' is not "
                "'useful'."
            )
            break
    if not lines:
        r, gpu = sampled[0]
        lines.append(
            f"GPU counters sampled for {len(sampled)} cell(s); e.g. {r.cell.label}: tensor "
            f"active {_pct(gpu.tensor_active)}, DRAM active {_pct(gpu.dram_active)}, naive "
            f"utilization {_pct(gpu.utilization_naive)}."
        )
    return lines


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"
