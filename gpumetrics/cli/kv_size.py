"""`gpumetrics kv-size`: prefix-cache hit ratio against KV capacity, from a trace.

The numpy side of `gpumetrics.kvsize` is imported when the command runs, not when the
`gpumetrics` command group loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from ..costmodel import DTYPE_BYTES
from ..errors import ConfigError, GpumetricsError
from ..extras import MissingExtraError, require
from ..settings import KvSizeSettings
from .loader import load_settings
from .options import INT_LIST, OutputFile, resolve_gpu, resolve_model

if TYPE_CHECKING:
    from ..kvsize.mrc import MissRatioCurve
    from ..kvsize.reader import ReadReport
    from ..kvsize.records import Encode
    from ..kvsize.sizing import KvCosts, SizingReport
    from ..kvsize.trace import Trace

__all__ = ["FORMATS", "kv_size"]

FORMATS = ("mooncake", "gpumetrics", "conversations")
"""`kvsize.records.FORMATS`, spelled out so that loading the command imports no numpy."""


def _byte_encoder() -> Encode:
    """The worker's byte tokenizer, imported on the first text prompt only."""
    loaded: list[Encode] = []

    def encode(text: str) -> list[int]:
        if not loaded:
            try:
                from ..worker.tokenizer import ByteTokenizer  # noqa: PLC0415 - heavy package
            except ImportError as exc:
                raise ConfigError(
                    "tokenizer",
                    f"text prompts need --tokenizer tokenizer.json or the worker's byte "
                    f"tokenizer (pip install 'gpumetrics[worker]'): {exc}",
                ) from None
            loaded.append(ByteTokenizer(259).encode)
        return list(loaded[0](text))

    return encode


def _curve(
    chunks: Iterator[Trace], read: ReadReport, sample_rate: float | None, seed: int
) -> MissRatioCurve:
    from ..kvsize.mrc import exact_curve  # noqa: PLC0415 - numpy, on use
    from ..kvsize.shards import SampledCurve  # noqa: PLC0415
    from ..kvsize.trace import concat  # noqa: PLC0415

    if sample_rate is not None:
        builder = SampledCurve(sample_rate, seed)
        for chunk in chunks:
            builder.add(chunk)
        if not builder.requests:
            raise ConfigError("trace", _empty(read))
        return builder.curve()
    parts = list(chunks)
    if not parts:
        raise ConfigError("trace", _empty(read))
    return exact_curve(concat(parts))


def _empty(read: ReadReport) -> str:
    why = f" ({read.malformed_summary()})" if read.malformed_count else ""
    return f"{read.path} holds no requests{why}"


@click.command("kv-size")
@click.option(
    "--trace",
    "trace_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL trace (.gz too): Mooncake, gpumetrics-recorded, or conversations.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", *FORMATS]),
    default="auto",
    show_default=True,
    help="Trace format; auto names it from the first record.",
)
@click.option(
    "--block-size",
    type=click.IntRange(min=1),
    help="Tokens a block. [default: the trace's; 512 for Mooncake, 16 for conversations]",
)
@click.option(
    "--tokenizer",
    "tokenizer_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="tokenizer.json for text prompts (needs the 'tokenizers' package); "
    "default: the worker's byte tokenizer.",
)
@click.option("--model", help="Preset or config.json: price capacities in KV bytes.")
@click.option("--gpu", help="GPU table key (h200, h100-sxm, ...): GPUs after weights.")
@click.option(
    "--tp",
    type=click.IntRange(min=1),
    help="Tensor-parallel degree. [default: with --gpu, the smallest power of two at which "
    "the weights fit; else 1]",
)
@click.option(
    "--dtype", type=click.Choice(sorted(DTYPE_BYTES)), default="bf16", show_default=True,
    help="Weight dtype.",
)  # fmt: skip
@click.option(
    "--kv-dtype", type=click.Choice(sorted(DTYPE_BYTES)), default="bf16", show_default=True
)
@click.option(
    "--memory-fraction", type=click.FloatRange(0, 1, min_open=True), default=0.9,
    show_default=True, help="Share of GPU memory for weights + KV (vLLM's).",
)  # fmt: skip
@click.option(
    "--target", type=float, default=0.9, show_default=True,
    help="Share of the infinite-cache hit ratio to size for, in (0, 1].",
)  # fmt: skip
@click.option(
    "--capacity", "capacities", type=INT_LIST, default=(), help="Capacities in blocks: 64,1024."
)
@click.option(
    "--sample-rate", type=float, help="SHARDS sample rate in (0, 1] for huge traces (e.g. 0.01)."
)
@click.option(
    "--sample-seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Another sample of blocks (0: the default), to see how much a sampled curve moves.",
)
@click.option(
    "--strict", is_flag=True, help="Exit 2 if any line is malformed (default: warn, leave it out)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the rows as CSV.")
@click.option(
    "--plot",
    type=OutputFile(requires="plot"),
    help="Write a PNG.",
)
@click.option(
    "--html",
    type=OutputFile(requires="plot"),
    help="Write HTML.",
)
@click.pass_context
def kv_size(ctx: click.Context, /, **_: object) -> None:
    """How much KV memory a trace needs for the prefix-cache hit ratio you want.

    Example: gpumetrics kv-size --trace conversation_trace.jsonl --format mooncake
    --model llama-3-70b --gpu h200 --target 0.9
    """
    require("kvsize", "gpumetrics kv-size")  # numpy, before the modules that import it
    from ..kvsize.reader import ReadReport, load_tokenizer, read_trace  # noqa: PLC0415
    from ..kvsize.report import report_to_csv, report_to_dict, report_to_html  # noqa: PLC0415
    from ..kvsize.sizing import kv_costs, size, smallest_tp  # noqa: PLC0415

    s = load_settings(KvSizeSettings, ctx)
    trace_path, dtype, kv_dtype, memory_fraction = (
        s.trace_path,
        s.dtype,
        s.kv_dtype,
        s.memory_fraction,
    )
    plot, html = s.plot, s.html
    capacities = s.capacities or None
    costs: KvCosts | None = None
    if s.model is not None:
        model = resolve_model(s.model)
        gpu = resolve_gpu(s.gpu, dtype=dtype) if s.gpu else None
        tp = s.tp
        if tp is None and gpu is not None:
            tp = smallest_tp(
                model, gpu, dtype=dtype, kv_dtype=kv_dtype, memory_fraction=memory_fraction
            )
        tp = tp or 1
        try:
            costs = kv_costs(
                model, gpu, tp=tp, dtype=dtype, kv_dtype=kv_dtype, memory_fraction=memory_fraction
            )
        except GpumetricsError as exc:
            raise click.UsageError(str(exc)) from None
    read = ReadReport(str(trace_path))
    try:
        encode = load_tokenizer(s.tokenizer_path) if s.tokenizer_path else _byte_encoder()
        chunks = read_trace(trace_path, read, fmt=s.fmt, block_size=s.block_size, encode=encode)
        curve = _curve(chunks, read, s.sample_rate, s.sample_seed)
        if s.strict and read.malformed_count:
            raise ConfigError("trace", read.malformed_summary())
        report = size(curve, capacities=capacities, costs=costs, target=s.target)
    except MissingExtraError:
        raise  # one line, exit 2 (cli.ExtraNeeded)
    except GpumetricsError as exc:
        raise click.UsageError(str(exc)) from None
    if read.malformed_count:
        click.echo(f"warning: {read.malformed_summary()}", err=True)
    title = f"{trace_path.name}: prefix-cache hit ratio against KV capacity"
    png = _plot(report, title) if plot or html else None
    if plot is not None and png is not None:
        _write(plot, png)
    if html is not None:
        _write(html, report_to_html(report, title, png).encode())
    if s.as_json:
        source = {
            "path": str(trace_path),
            "format": read.format,
            "lines": read.lines,
            "malformed_lines": read.malformed_count,
            "malformed": [{"line": m.line, "reason": m.reason} for m in read.malformed],
        }
        click.echo(json.dumps(report_to_dict(report, source), indent=2))
    elif s.as_csv:
        click.echo(report_to_csv(report), nl=False)
    else:
        _print(report, read)


def _plot(report: SizingReport, title: str) -> bytes:
    require("plot", "gpumetrics kv-size --plot/--html")  # checked at parsing already
    from ..kvsize.plot import curve_png  # noqa: PLC0415 - matplotlib is optional

    return curve_png(report, title)


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise click.UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _print(report: SizingReport, read: ReadReport) -> None:
    from ..kvsize.report import COLUMNS, cells, summary_lines, verdict_lines  # noqa: PLC0415

    console = Console()
    console.width = max(console.width, 120)
    console.print(f"[bold]{read.path}[/] ({read.format} format)")
    for line in summary_lines(report):
        console.print(line)
    table = Table()
    for header in COLUMNS:
        table.add_column(header, justify="left" if header == "" else "right", no_wrap=True)
    for row in report.rows:
        style = "bold green" if row.is_target else None
        table.add_row(*cells(row), style=style)
    console.print(table)
    console.print(
        "[dim]hit ratio: hit blocks / looked-up blocks (token hit: of prompt tokens); of max: "
        "share of the infinite-cache hit ratio; * reaches the target.[/]"
    )
    for line in verdict_lines(report):
        console.print(line)
