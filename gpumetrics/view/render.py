"""A `NodeView` as rich tables: naive utilisation beside what the GPUs really do.

Over a terminal rich adds colour; into a pipe or a file the same tables come out as plain
text with no escape codes (`gpumetrics top --once | less`).
"""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .model import EngineRow, GpuRow, NodeView, PortRow

__all__ = ["ENGINE_LEGEND", "GPU_LEGEND", "frame", "percent", "si"]

#: What the GPU columns mean (printed under the GPU table).
GPU_LEGEND = (
    "naive util: share of time any kernel ran (nvidia-smi utilization.gpu); SM / tensor / "
    "DRAM active: GPM, what the hardware did; MFU / MBU: the engines' model FLOPs and bytes "
    "over the GPU's peaks; NVLink: payload over peak bandwidth."
)
#: What the engine columns mean (printed under the engine table).
ENGINE_LEGEND = (
    "Over the derived window: batch occupancy (mean batch / max_num_seqs), mean KV usage, "
    "prefix-cache hit ratio, share of FLOPs recomputing evicted KV, tokens/s, the roofline "
    "bound (intensity in FLOP per byte), MFU, MBU, load score; preempt: total so far; "
    "waiting: queued now."
)
_NAIVE = "yellow"
_TRUTH = "bold cyan"


def percent(value: float | None) -> str:
    """0.4567 -> "45.7%"; tiny non-zero values as "<0.1%"; None -> "-"."""
    if value is None:
        return "-"
    if 0 < value < 0.0005:
        return "<0.1%"
    return f"{value:.1%}"


def si(value: float | None, unit: str = "") -> str:
    """12345 -> "12.3k"; None -> "-"."""
    if value is None:
        return "-"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.1f}{prefix}{unit}"
    return f"{value:.0f}{unit}" if value == int(value) or abs(value) >= 10 else f"{value:.2f}{unit}"


def _memory(row: GpuRow) -> str:
    if row.memory_used is None or row.memory_total is None:
        return "-"
    return f"{row.memory_used / 2**30:.0f}/{row.memory_total / 2**30:.0f}GiB"


def _gpu_table(view: NodeView) -> Table:
    table = Table(title="GPUs", box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    table.add_column("GPU", justify="right")
    table.add_column("naive util", justify="right", style=_NAIVE)
    for header in ("SM active", "tensor active", "DRAM active"):
        table.add_column(header, justify="right", style=_TRUTH)
    table.add_column(f"MFU {view.dtype}", justify="right", style=_TRUTH)
    for header in ("MBU", "NVLink", "power", "memory"):
        table.add_column(header, justify="right")
    for row in view.gpus:
        table.add_row(
            row.gpu,
            percent(row.naive_util),
            percent(row.sm_active),
            percent(row.tensor_active),
            percent(row.dram_active),
            percent(row.mfu),
            percent(row.mbu),
            percent(row.nvlink),
            si(row.power_watts, "W"),
            _memory(row),
        )
    return table


def _bound(row: EngineRow) -> str:
    if row.compute_bound is None:
        return "-"
    kind = "compute" if row.compute_bound >= 1 else "memory"
    return kind if row.intensity is None else f"{kind} ({row.intensity:.3g} F/B)"


def _engine_table(view: NodeView) -> Table:
    table = Table(title="Engines", box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    table.add_column("engine")
    table.add_column("model")
    for header in (
        "batch occ", "KV usage", "hit ratio", "recompute", "preempt", "waiting", "tokens/s"
    ):  # fmt: skip
        table.add_column(header, justify="right")
    table.add_column(f"bound {view.dtype}", justify="right", style=_TRUTH)
    for header in (f"MFU {view.dtype}", "MBU", "load"):
        table.add_column(header, justify="right", style=_TRUTH)
    for row in view.engines:
        table.add_row(
            row.engine,
            row.model,
            percent(row.batch_occupancy),
            percent(row.kv_usage),
            percent(row.hit_ratio),
            percent(row.recompute_share),
            si(row.preemptions),
            si(row.waiting),
            si(row.tokens_per_second),
            _bound(row),
            percent(row.mfu),
            percent(row.mbu),
            percent(row.load_score),
        )
    return table


def _port_table(ports: tuple[PortRow, ...]) -> Table:
    table = Table(title="InfiniBand", box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    table.add_column("port")
    table.add_column("tx of line rate", justify="right", style=_TRUTH)
    table.add_column("rx of line rate", justify="right", style=_TRUTH)
    for port in ports:
        table.add_row(port.port, percent(port.tx), percent(port.rx))
    return table


def frame(view: NodeView, *, when: str = "") -> RenderableType:
    """One screen: a heading, then GPUs, engines and IB ports (the parts the node has)."""
    window = f"derived over {view.window}" if view.window else "derived gauges: none yet"
    heading = Text.assemble(
        ("gpumetrics top", "bold"), f"  {view.source}  {window}  {when}".rstrip()
    )
    parts: list[RenderableType] = [heading]
    if view.error is not None:
        parts.append(Text(f"error: {view.error}", style="bold red"))
    if view.down:
        down = ", ".join(view.down)
        parts.append(Text(f"sources down: {down} (`gpumetrics doctor` says why)", style="red"))
    if view.gpus:
        parts += [_gpu_table(view), Text(GPU_LEGEND, style="dim")]
    if view.engines:
        parts += [_engine_table(view), Text(ENGINE_LEGEND, style="dim")]
    if view.ports:
        parts.append(_port_table(view.ports))
    if not (view.gpus or view.engines or view.ports or view.error):
        parts.append(Text("no GPU, engine or IB series in this scrape"))
    return Group(*parts)
