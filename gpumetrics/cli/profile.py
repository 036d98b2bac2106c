"""`gpumetrics profile`: a measured roofline of the reference worker, or of a running engine.

Sweep mode runs the worker (torch, imported only when the command runs) through batch x
context (x prefill chunk) cells; attach mode (`--engine URL`) observes any engine the scrape
bridge understands over `--duration` seconds. Both sample NVML/GPM when a GPU is there and
print a table and a verdict; --json/--csv/--plot/--html write files (each path is checked
writable before any work). The orchestration lives in `gpumetrics.profile.session`; this module
reads the flags, injects the worker's torch side and draws the terminal. Exit status: 0 done,
1 nothing could be measured (engine not answering, every cell skipped; partial results are
still written), 2 bad input.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..costmodel.fit import DoesNotFitError
from ..engine_config import AUTO, KINDS
from ..errors import ConfigError, GpumetricsError
from ..extras import MissingExtraError, require
from ..profile.measure import CellSpec
from ..profile.output import PlotsUnavailableError, write_outputs
from ..profile.report import ProfileReport
from ..profile.session import WorkerParts, prepare_sweep, profile_attach, profile_sweep
from ..profile.table import (
    LEGEND,
    attach_rows,
    cell_row,
    columns,
    has_gpu_activity,
    header_lines,
)
from ..settings import ProfileSettings
from ._fit import DoesNotFit
from .loader import load_settings
from .options import (
    INT_LIST,
    QUANTITY,
    OutputFile,
    block_size_option,
    device_option,
    grid_options,
    model_option,
    seed_option,
)

__all__ = ["profile"]

_SWEEP_ONLY = ("batch", "context", "chunk", "device", "calibrate", "kv_blocks", "fast_decode")
_ATTACH_ONLY = ("kind", "gpus", "duration", "interval")
_POSITIVE = click.IntRange(min=1)
_FILE = OutputFile()
_PNG = OutputFile(requires="plot")


@click.command()
@device_option
@model_option("tiny", "tiny, 1b (Llama-3.2-1B shape), another dense preset, or a config.json.")
@grid_options(
    "1,4,16", "128,512", "Context lengths (KV tokens per sequence at the first timed step)."
)
@click.option(
    "--chunk", type=INT_LIST, default=(), help="Prefill chunk sizes (adds prefill cells)."
)
@click.option("--steps", type=_POSITIVE, default=16, show_default=True, help="Timed steps a cell.")
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True)
@click.option(
    "--dtype",
    type=click.Choice(["fp32", "bf16", "fp16"]),
    help="Compute dtype [default: fp32 on CPU, bf16 on CUDA and for --engine].",
)
@click.option(
    "--kv-blocks",
    type=_POSITIVE,
    help="Fix the KV pool (and budget) in blocks [default: what memory allows].",
)
@block_size_option
@click.option("--gpu", help="GPU table key or NVML name [default: detected].")
@click.option("--peak-flops", type=QUANTITY, help="Dense peak FLOP/s for the dtype (e.g. 989.4T).")
@click.option("--hbm-bandwidth", type=QUANTITY, help="Memory bandwidth in bytes/s (e.g. 4.8T).")
@click.option("--calibrate", is_flag=True, help="Measure achievable FLOP/s and bandwidth here.")
@click.option("--engine", metavar="URL", help="Attach to a running engine.")
@click.option("--kind", type=click.Choice([*KINDS, AUTO]), default=AUTO, show_default=True)
@click.option(
    "--gpus",
    type=click.STRING,
    callback=lambda _ctx, _param, text: tuple(g.strip() for g in text.split(",")) if text else (),
    help="GPUs the engine runs on (indexes, e.g. 0,1).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    metavar="S",
    help="Attach window in seconds.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="Seconds between scrapes [default: duration / 4, at most 5].",
)
@click.option("--json", "json_path", type=_FILE, help="Write the report as JSON.")
@click.option("--csv", "csv_path", type=_FILE, help="Write the cells as CSV.")
@click.option("--plot", "plot_path", type=_PNG, help="Write the roofline plot (PNG).")
@click.option("--html", "html_path", type=_FILE, help="Write a self-contained HTML report.")
@seed_option("Weights.")
@click.option(
    "--fast-decode", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
    help="The worker's CUDA-graph decode path (auto: on for CUDA; off: the reference path).",
)  # fmt: skip
@click.pass_context
def profile(ctx: click.Context, /, **_: object) -> None:
    """Where a workload sits on its roofline, what bounds it, and what would change it.

    Examples: gpumetrics profile --device cpu --model tiny --batch 1,4,16 --context 128,512
    --html report.html; gpumetrics profile --engine http://127.0.0.1:8000 --duration 30
    """
    given = {
        k
        for k in ctx.params
        if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT
    }
    attach = ctx.params["engine"] is not None
    mode_clash = given & (set(_SWEEP_ONLY) if attach else set(_ATTACH_ONLY))
    if mode_clash:
        names = ", ".join(f"--{k.replace('_', '-')}" for k in sorted(mode_clash))
        raise click.UsageError(f"{names} cannot be used {'with' if attach else 'without'} --engine")
    s = load_settings(ProfileSettings, ctx)
    err = Console(stderr=True)
    try:
        report = _attach(s, err) if s.attach else _sweep(s, err)
    except DoesNotFitError as exc:  # bad input: a model too big for the device
        raise DoesNotFit(str(exc)) from None
    except MissingExtraError:
        raise  # one line, exit 2 (cli.ExtraNeeded)
    except ConfigError as exc:
        if exc.key.startswith("--"):
            raise click.BadParameter(exc.problem, param_hint=exc.key) from None
        raise click.UsageError(str(exc)) from None
    except GpumetricsError as exc:
        raise click.ClickException(str(exc)) from None
    _print(report)
    _write(report, s, err)
    failed = (report.attach is not None and report.attach.summary.scrapes < 2) or (
        report.mode == "sweep" and all(r.numbers is None for r in report.results)
    )
    if failed:
        raise click.ClickException(report.verdict[0])


def _worker_parts() -> WorkerParts:
    """The reference worker's torch side (imported only for a sweep)."""
    require("worker", "gpumetrics profile's sweep (or attach to an engine: --engine URL)")
    from ..worker.calibrate import calibrate  # noqa: PLC0415 - torch, only when needed
    from ..worker.cell_runner import WorkerRunner, cuda_memory_free  # noqa: PLC0415
    from ..worker.runner import check_device  # noqa: PLC0415

    return WorkerParts(
        check_device=check_device,
        runner=WorkerRunner,
        calibrate=calibrate,
        memory_free=cuda_memory_free,
    )


def _sweep(s: ProfileSettings, err: Console) -> ProfileReport:
    request = prepare_sweep(s)  # bad input fails here, before torch loads
    parts = _worker_parts()
    with _progress(err) as bar:
        task = bar.add_task("sweep", total=None, visible=False)

        def advance(done: int, total: int, cell: CellSpec) -> None:
            description = f"cell {cell.label}"
            bar.update(task, completed=done, total=total, description=description, visible=True)
            bar.refresh()

        # No spinner: its refresh thread would compete with the measurement.
        return profile_sweep(
            request, parts, progress=advance, say=lambda line: err.print(line, highlight=False)
        )


def _attach(s: ProfileSettings, err: Console) -> ProfileReport:
    with _progress(err) as bar:
        task = bar.add_task(f"observing {s.engine}", total=s.duration)
        return profile_attach(s, progress=lambda t: bar.update(task, completed=t, refresh=True))


def _progress(err: Console) -> Progress:
    """A progress bar redrawn only when told: a refresh thread would compete with torch's
    worker threads for the cores and distort the step times it is measuring."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        auto_refresh=False,
    )


def _print(report: ProfileReport) -> None:
    console = Console()
    console.width = max(console.width, 170)
    for line in header_lines(report):
        console.print(f"[dim]{line}[/]", highlight=False)
    if report.results:
        gpu = has_gpu_activity(report)
        table = Table(title="gpumetrics profile: one row per cell")
        for column in columns(gpu):
            table.add_column(
                column,
                justify="left" if column in ("cell", "bound", "marks") else "right",
                no_wrap=True,
            )
        skipped = []
        for result in report.results:
            row = cell_row(result, gpu=gpu)
            if result.numbers is None:
                skipped.append(f"{row[0]}: {result.skipped}")
                table.add_row(row[0], "[yellow]skipped[/]", *row[2:], style="dim")
                continue
            row[9] = "[red]memory[/]" if row[9] == "memory" else "[green]compute[/]"
            table.add_row(*row)
        console.print(table)
        console.print(f"[dim]{LEGEND}[/]", highlight=False)
        for line in skipped:
            console.print(f"[yellow]skipped[/] {line}", highlight=False)
    if report.attach is not None and report.attach.summary.scrapes:
        table = Table(title=f"engine window: {report.attach.url}", show_header=False)
        for key, value in attach_rows(report.attach.summary):
            table.add_row(key, value)
        console.print(table)
    console.print("[bold]Verdict[/]")
    for line in report.verdict:
        console.print(f"- {line}", highlight=False)


def _write(report: ProfileReport, s: ProfileSettings, err: Console) -> None:
    try:
        written = write_outputs(
            report,
            json_path=s.json_path,
            csv_path=s.csv_path,
            plot_path=s.plot_path,
            html_path=s.html_path,
        )
    except PlotsUnavailableError as exc:
        raise click.ClickException(str(exc)) from None
    if written:
        err.print(f"wrote {', '.join(map(str, written))}", highlight=False)
