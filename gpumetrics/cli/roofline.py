"""`gpumetrics roofline`: the decode roofline of a model on a GPU, with no GPU needed."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..costmodel import DTYPE_BYTES
from ..errors import GpumetricsError
from ..hardware import DTYPES
from ..profile.planner import RooflinePlan, plan, plan_to_dict, verdict
from ..settings import RooflineSettings
from ..units import format_bytes, format_si
from .loader import load_settings
from .options import QUANTITY, grid_options, model_option, resolve_gpu, resolve_model

__all__ = ["roofline"]


@click.command()
@model_option("llama-3-8b", "Preset name or path of a Hugging Face config.json.")
@click.option(
    "--gpu",
    default=None,
    help='Table key (h200, h100-sxm, ...) or NVML name ("NVIDIA H100 80GB HBM3"). '
    "[default: h100-sxm]",
)
@click.option(
    "--gpu-spec",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help="TOML/JSON file describing the GPU (overrides --gpu).",
)
@click.option(
    "--dtype",
    type=click.Choice([d for d in DTYPES if d in DTYPE_BYTES]),
    default="bf16",
    show_default=True,
    help="Weight and compute dtype.",
)
@click.option(
    "--kv-dtype", type=click.Choice(sorted(DTYPE_BYTES)), default="bf16", show_default=True
)
@click.option(
    "--tp", type=click.IntRange(min=1), default=1, show_default=True, help="Tensor-parallel degree."
)
@grid_options(
    "1,8,64,256",
    "512,4096,32768",
    "Context lengths (KV tokens per sequence, including the token being decoded).",
)
@click.option(
    "--memory-fraction",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.9,
    show_default=True,
    help="Share of GPU memory for weights + KV (vLLM's gpu_memory_utilization).",
)
@click.option(
    "--peak-flops", type=QUANTITY, help="Override the dense peak for --dtype (e.g. 989.4T)."
)
@click.option(
    "--hbm-bandwidth", type=QUANTITY, help="Override HBM bandwidth in bytes/s (e.g. 4.8T)."
)
@click.option("--gpu-memory", type=QUANTITY, help="Override GPU memory in bytes (e.g. 141Gi).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.pass_context
def roofline(ctx: click.Context, /, **_: object) -> None:
    """Where decode sits against the GPU's ops:byte ridge, per batch size and context.

    Example: gpumetrics roofline --model llama-3-8b --gpu h200 --batch 1,8,64 --context 512,4096
    """
    s = load_settings(RooflineSettings, ctx)
    model = resolve_model(s.model)
    gpu = resolve_gpu(
        s.gpu if s.gpu or s.gpu_spec else "h100-sxm",
        s.gpu_spec,
        dtype=s.dtype,
        peak_flops=s.peak_flops,
        hbm_bandwidth=s.hbm_bandwidth,
        gpu_memory=s.gpu_memory,
    )
    try:
        result = plan(
            model,
            gpu,
            batches=s.batch,
            contexts=s.context,
            dtype=s.dtype,
            kv_dtype=s.kv_dtype,
            tp=s.tp,
            memory_fraction=s.memory_fraction,
        )
    except GpumetricsError as exc:
        raise click.UsageError(str(exc)) from None
    if s.as_json:
        click.echo(json.dumps(plan_to_dict(result), indent=2))
        return
    _print_table(result)


def _print_table(result: RooflinePlan) -> None:
    console = Console()
    console.width = max(console.width, 120)
    gpu, model = result.gpu, result.model
    console.print(
        f"[bold]{model.name}[/] ({model.total_params / 1e9:.2f} B params, "
        f"{result.dtype} weights, {result.kv_dtype} KV) on [bold]{gpu.name}[/]"
        + (f" x TP{result.tp}" if result.tp > 1 else "")
    )
    console.print(
        f"peak {format_si(result.peak_flops, 'FLOP/s')} ({result.dtype}, dense), "
        f"HBM {format_si(result.bandwidth, 'B/s')} -> ridge [bold]{result.ridge:.0f}[/] FLOP/byte"
    )
    console.print(f"[dim]peaks: {gpu.source}[/]")
    console.print(
        f"per GPU: weights {format_bytes(result.weight_bytes_per_gpu)}, reserve "
        f"{format_bytes(result.reserve.bytes)} ({result.reserve.why}), KV budget "
        f"{format_bytes(max(result.kv_budget_bytes, 0))} at {result.memory_fraction:.0%} of "
        f"{format_bytes(gpu.memory_bytes)} = {result.kv_capacity_tokens:,} tokens "
        f"({format_bytes(result.kv_bytes_per_token)}/token)"
    )
    table = Table(title="decode step, per GPU")
    for header in (
        "batch",
        "context",
        "FLOPs",
        "bytes",
        "FLOP/B",
        "step",
        "tokens/s",
        "bound",
        "KV needed",
        "fits",
        "mark",
    ):
        table.add_column(
            header, justify="left" if header in ("bound", "mark") else "right", no_wrap=True
        )
    for row in result.rows:
        marks = []
        if row.first_compute_bound:
            marks.append("1st compute-bound")
        if row.largest_fitting:
            marks.append("largest fit")
        table.add_row(
            str(row.batch),
            str(row.context),
            format_si(row.flops),
            format_si(row.bytes, "B"),
            f"{row.arithmetic_intensity:.1f}",
            f"{row.predicted_step_seconds * 1e3:.2f} ms",
            f"{row.tokens_per_second:,.0f}",
            "[red]memory[/]" if row.bound.value == "memory" else "[green]compute[/]",
            format_bytes(row.kv_bytes),
            "yes" if row.fits else "[red]no[/]",
            ", ".join(marks),
        )
    console.print(table)
    console.print(
        "[dim]1st compute-bound: smallest swept batch at or past the ridge for its context; "
        "largest fit: largest swept batch whose KV fits the budget.[/]"
    )
    for line in verdict(result):
        console.print(f"- {line}")
