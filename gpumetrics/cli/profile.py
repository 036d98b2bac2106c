"""`gpumetrics profile`: a measured roofline of the reference worker, or of a running engine.

Sweep mode runs the worker (torch, imported only when the command runs) through batch x
context (x prefill chunk) cells; attach mode (`--engine URL`) observes any engine the scrape
bridge understands over `--duration` seconds. Both sample NVML/GPM when a GPU is there and
print a table and a verdict; --json/--csv/--plot/--html write files. Exit status: 0 done,
1 nothing could be measured (engine not answering, every cell skipped; partial results are
still written), 2 bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..costmodel.fit import host_memory_available
from ..errors import GpumetricsError, UnavailableError
from ..hardware import GpuSpec, find_gpu, match_nvml_name
from ..profile.activity import NvmlSampler
from ..profile.analysis import Roofs
from ..profile.measure import Calibration, CellSpec, MeasureWindow, NullWindow, StepPlan
from ..profile.output import PlotsUnavailableError, write_outputs
from ..profile.report import ProfileReport
from ..profile.run import (
    attach_report,
    needs_calibration,
    resolve_roofs,
    sweep_report,
)
from ..profile.sweep import run_sweep, sweep_cells, sweep_memory_need
from ..profile.table import (
    LEGEND,
    attach_rows,
    cell_row,
    columns,
    has_gpu_activity,
    header_lines,
)
from ..sources.engine import AUTO, KINDS, EngineConfig, EngineSource, GpuRef
from ._fit import first_line, refuse_unless_fits
from .options import parse_int_list, parse_quantity, resolve_model

if TYPE_CHECKING:
    from ..sources.nvml import NvmlSource

__all__ = ["profile"]

_SWEEP_ONLY = (
    "batch_text", "context_text", "chunk_text", "device", "calibrate", "kv_blocks", "fast_decode",
)  # fmt: skip
_ATTACH_ONLY = ("kind", "gpus_text", "duration", "interval")
_CPU_NOTE = "not available: the sweep runs on the CPU (NVML measures NVIDIA GPUs)"
_POSITIVE = click.IntRange(min=1)
_FILE = click.Path(dir_okay=False, writable=True, path_type=Path)


@click.command()
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option(
    "--model",
    "model_name",
    default="tiny",
    show_default=True,
    help="tiny, 1b (Llama-3.2-1B shape), another dense preset, or a config.json.",
)
@click.option(
    "--batch", "batch_text", default="1,4,16", show_default=True, help="Decode batch sizes."
)
@click.option(
    "--context",
    "context_text",
    default="128,512",
    show_default=True,
    help="Context lengths (KV tokens per sequence at the first timed step).",
)
@click.option("--chunk", "chunk_text", help="Prefill chunk sizes (adds prefill cells).")
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
@click.option("--block-size", type=_POSITIVE, default=16, show_default=True)
@click.option(
    "--fast-decode", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
    help="The worker's CUDA-graph decode path (auto: on for CUDA; off: the reference path).",
)  # fmt: skip
@click.option("--gpu", "gpu_name", help="GPU table key or NVML name [default: detected].")
@click.option("--peak-flops", help="Dense peak FLOP/s for the dtype (e.g. 989.4T).")
@click.option("--hbm-bandwidth", help="Memory bandwidth in bytes/s (e.g. 4.8T).")
@click.option("--calibrate", is_flag=True, help="Measure achievable FLOP/s and bandwidth here.")
@click.option("--engine", "engine_url", metavar="URL", help="Attach to a running engine.")
@click.option("--kind", type=click.Choice([*KINDS, AUTO]), default=AUTO, show_default=True)
@click.option("--gpus", "gpus_text", help="GPUs the engine runs on (indexes, e.g. 0,1).")
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
@click.option("--plot", "plot_path", type=_FILE, help="Write the roofline plot (PNG).")
@click.option("--html", "html_path", type=_FILE, help="Write a self-contained HTML report.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
def profile(ctx: click.Context, /, **o: Any) -> None:
    """Where a workload sits on its roofline, what bounds it, and what would change it.

    Examples: gpumetrics profile --device cpu --model tiny --batch 1,4,16 --context 128,512
    --html report.html; gpumetrics profile --engine http://127.0.0.1:8000 --duration 30
    """
    given = {k for k in o if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}
    mode_clash = given & (set(_SWEEP_ONLY) if o["engine_url"] else set(_ATTACH_ONLY))
    if mode_clash:
        names = ", ".join(f"--{k.removesuffix('_text').replace('_', '-')}" for k in mode_clash)
        raise click.UsageError(
            f"{names} cannot be used {'with' if o['engine_url'] else 'without'} --engine"
        )
    peak = parse_quantity("--peak-flops", o["peak_flops"]) if o["peak_flops"] else None
    bandwidth = (
        parse_quantity("--hbm-bandwidth", o["hbm_bandwidth"]) if o["hbm_bandwidth"] else None
    )
    gpu = _table_gpu(o["gpu_name"])
    err = Console(stderr=True)
    if o["engine_url"]:
        report = _attach(o, gpu, peak, bandwidth, err)
    else:
        report = _sweep(o, gpu, peak, bandwidth, err)
    _print(report)
    _write(report, o, err)
    failed = (report.attach is not None and report.attach.summary.scrapes < 2) or (
        report.mode == "sweep" and all(r.numbers is None for r in report.results)
    )
    if failed:
        raise click.ClickException(report.verdict[0])


def _table_gpu(name: str | None) -> GpuSpec | None:
    if name is None:
        return None
    try:
        return find_gpu(name)
    except GpumetricsError as exc:
        raise click.BadParameter(str(exc), param_hint="--gpu") from None


def _nvml() -> tuple[NvmlSource | None, str]:
    """An NVML source (`sources.nvml.NvmlSource`), or None and why not."""
    try:
        from ..sources.nvml import NvmlSource  # noqa: PLC0415 - loads pynvml's library

        source = NvmlSource(xid=False)
    except UnavailableError as exc:
        return None, f"not available ({exc.reason})"
    except (ImportError, OSError) as exc:
        return None, f"not available ({exc})"
    gpm = "with GPM" if source.gpm_enabled else "naive utilization only (no GPM on this GPU)"
    return source, f"sampled through NVML, {gpm}"


def _sweep(
    o: dict[str, Any],
    gpu: GpuSpec | None,
    peak: float | None,
    bandwidth: float | None,
    err: Console,
) -> ProfileReport:
    model = resolve_model(o["model_name"])
    cells = sweep_cells(
        parse_int_list("--batch", o["batch_text"]),
        parse_int_list("--context", o["context_text"]),
        parse_int_list("--chunk", o["chunk_text"]) if o["chunk_text"] else (),
    )
    cuda = o["device"] == "cuda"
    if gpu is not None and not cuda:
        raise click.UsageError(
            "--gpu picks a GPU's datasheet roofs; a --device cpu run has none (its roofs are "
            "calibrated, or give --peak-flops and --hbm-bandwidth)"
        )
    dtype = o["dtype"] or ("bf16" if cuda else "fp32")  # WorkerRunner's default
    need = sweep_memory_need(
        model,
        cells,
        StepPlan(o["steps"], o["warmup"]),
        dtype=dtype,
        block_size=o["block_size"],
        kv_blocks=o["kv_blocks"],
    )
    if not cuda and not model.is_moe:  # MoE is refused below, fit or not
        # before torch loads: a model too big must fail in milliseconds
        refuse_unless_fits(model, need, host_memory_available(), "this host (MemAvailable)")
    try:
        from ..worker.calibrate import calibrate  # noqa: PLC0415 - torch, only when needed
        from ..worker.cell_runner import WorkerRunner  # noqa: PLC0415
        from ..worker.runner import check_device  # noqa: PLC0415
    except ImportError as exc:
        raise click.ClickException(
            f"the sweep runs the reference worker, which needs torch ({exc}): "
            "pip install 'gpumetrics[worker]'; or attach to an engine with --engine URL"
        ) from None
    try:
        check_device(o["device"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    if cuda and not model.is_moe:
        from ..worker.cell_runner import cuda_memory_free  # noqa: PLC0415

        refuse_unless_fits(model, need, *cuda_memory_free(o["device"]))
    source, gpu_note = _nvml() if cuda else (None, _CPU_NOTE)
    try:
        plan = StepPlan(o["steps"], o["warmup"], min_seconds=0.25 if source else 0.0)
        try:
            runner = WorkerRunner(
                model,
                cells,
                plan,
                device=o["device"],
                kv_blocks=o["kv_blocks"],
                block_size=o["block_size"],
                dtype=o["dtype"],
                fast_decode=o["fast_decode"],
                seed=o["seed"],
            )
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--model") from None
        except RuntimeError as exc:  # allocating the model or the KV pool
            raise click.ClickException(f"cannot set up the worker: {first_line(exc)}") from None
        device, notes = runner.device, []
        fast = runner.model_runner.fast
        if fast is not None:
            notes.append(f"decode steps ran the worker's fast path ({fast.description}); "
                         "--fast-decode off times the reference path")  # fmt: skip
        if cuda and gpu is None:
            gpu = match_nvml_name(device.name)
            if gpu is None:
                notes.append(f"{device.name!r} has no spec-table row: roofs are measured")
        calibration = None
        if o["calibrate"] or needs_calibration(gpu, peak, bandwidth):
            if not o["calibrate"]:
                notes.append(
                    f"{device.name if cuda else 'this CPU'} has no datasheet roofs: calibrated "
                    "automatically (achievable matmul FLOP/s and copy bandwidth); give "
                    "--peak-flops and --hbm-bandwidth to use your own"
                )
            # No spinner: its refresh thread would compete with the measurement.
            err.print("calibrating: matmul FLOP/s and copy bandwidth...", highlight=False)
            calibration = calibrate(o["device"], device.dtype)
        roofs = _roofs(gpu, device.dtype, calibration, peak, bandwidth)
        window: Callable[[], MeasureWindow] = NullWindow
        if source is not None:
            window = NvmlSampler(source, uuid=device.uuid).window
        with _progress(err) as bar:
            task = bar.add_task("sweep", total=len(cells))

            def advance(done: int, total: int, cell: CellSpec) -> None:
                bar.update(task, completed=done, description=f"cell {cell.label}", refresh=True)

            outcomes = run_sweep(runner, cells, plan, window=window, progress=advance)
    finally:
        if source is not None:
            source.close()
    return sweep_report(
        outcomes,
        model=model,
        device=device,
        roofs=roofs,
        calibration=calibration,
        pool=runner.pool,
        plan=plan,
        gpu_counters=gpu_note,
        gpu_counters_available=source is not None,
        notes=notes,
    )


def _roofs(
    gpu: GpuSpec | None,
    dtype: str,
    calibration: Calibration | None,
    peak: float | None,
    bandwidth: float | None,
) -> Roofs:
    try:
        return resolve_roofs(
            gpu, dtype, calibration=calibration, peak_flops=peak, bandwidth=bandwidth
        )
    except GpumetricsError as exc:
        raise click.UsageError(str(exc)) from None


def _attach(
    o: dict[str, Any],
    gpu: GpuSpec | None,
    peak: float | None,
    bandwidth: float | None,
    err: Console,
) -> ProfileReport:
    from ..profile.attach import observe  # noqa: PLC0415

    gpus = tuple(g.strip() for g in o["gpus_text"].split(",")) if o["gpus_text"] else ()
    try:
        refs = [GpuRef.parse(g) for g in gpus]
        config = EngineConfig("profile", o["engine_url"], kind=o["kind"], gpus=gpus)
    except GpumetricsError as exc:
        raise click.BadParameter(str(exc), param_hint="--engine/--gpus") from None
    source, gpu_note = _nvml()
    indexes = tuple(r.index for r in refs if r.index)
    notes = []
    try:
        if gpu is None and source is not None:
            names = [d.name for d in source.devices if not indexes or str(d.index) in indexes]
            gpu = next((g for n in names if (g := match_nvml_name(n))), None)
        roofs = None
        if gpu is not None or (peak and bandwidth):
            roofs = _roofs(gpu, o["dtype"] or "bf16", None, peak, bandwidth)
        else:
            notes.append("no GPU peaks (no --gpu, none detected): MFU, MBU and bound are n/a")
        window = NvmlSampler(source, gpus=indexes).window() if source is not None else None
        with _progress(err) as bar:
            task = bar.add_task(f"observing {o['engine_url']}", total=o["duration"])
            observation = observe(
                EngineSource(config),
                o["duration"],
                interval=o["interval"],
                window=window,
                progress=lambda t: bar.update(task, completed=t, refresh=True),
            )
    finally:
        if source is not None:
            source.close()
    return attach_report(
        observation,
        url=o["engine_url"],
        kind=o["kind"],
        gpus=gpus,
        roofs=roofs,
        gpu_counters=gpu_note,
        gpu_counters_available=source is not None,
        notes=notes,
    )


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


def _write(report: ProfileReport, o: dict[str, Any], err: Console) -> None:
    try:
        written = write_outputs(
            report,
            json_path=o["json_path"],
            csv_path=o["csv_path"],
            plot_path=o["plot_path"],
            html_path=o["html_path"],
        )
    except PlotsUnavailableError as exc:
        raise click.ClickException(str(exc)) from None
    if written:
        err.print(f"wrote {', '.join(map(str, written))}", highlight=False)
