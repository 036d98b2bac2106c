"""`gpumetrics worker`: run the reference inference worker under a chat load and summarise.

The worker (torch) is imported only when the command runs, so the rest of the CLI works
without the `worker` extra.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.table import Table

from ..costmodel import ModelSpec
from ..costmodel.fit import MemoryNeed, host_memory_available, memory_need
from ..extras import require
from ..settings import WorkerSettings
from ._fit import first_line, refuse_unless_fits
from .loader import load_settings
from .options import (
    ADDRESS,
    block_size_option,
    device_option,
    model_option,
    resolve_model,
    seed_option,
)

__all__ = ["worker"]

#: gpumetrics.worker.ATTENTION_PATHS (not imported here: that would import torch).
_ATTENTION_PATHS = ("auto", "eager", "sdpa")
#: gpumetrics.worker.fast_decode.FAST_DECODE_MODES (likewise).
_FAST_DECODE_MODES = ("auto", "on", "off")


@click.command()
@device_option
@model_option(
    "tiny", "tiny (CPU tests), 1b (Llama-3.2-1B shape), any cost-model preset, or a config.json."
)
@click.option("--kv-blocks", type=click.IntRange(min=1), default=64, show_default=True)
@block_size_option
@click.option(
    "--max-batch", type=click.IntRange(min=1), default=16, show_default=True,
    help="Most sequences per step.",
)  # fmt: skip
@click.option(
    "--max-batch-tokens", type=click.IntRange(min=1), default=512, show_default=True,
    help="Token budget per step (prefill chunks + decodes).",
)  # fmt: skip
@click.option("--attention", type=click.Choice(_ATTENTION_PATHS), default="auto", show_default=True)
@click.option(
    "--fast-decode", type=click.Choice(_FAST_DECODE_MODES), default="auto", show_default=True,
    help="CUDA-graph decode steps with paged Triton attention (auto: on for CUDA).",
)  # fmt: skip
@click.option("--scenario", type=click.Choice(["chat"]), default="chat", show_default=True)
@click.option("--requests", type=click.IntRange(min=1), help="Stop after N finished turns.")
@click.option(
    "--duration", type=click.FloatRange(min=0, min_open=True), metavar="S",
    help="Send turns for S seconds, then let the running ones finish.",
)  # fmt: skip
@click.option(
    "--arrival-rate",
    type=click.FloatRange(min=0, min_open=True),
    help="New conversations per second.",
)
@click.option("--think-time", type=click.FloatRange(min=0), help="Mean seconds between turns.")
@click.option("--serve", "serve_at", type=ADDRESS, help="Serve the hooks' /metrics here.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@seed_option("Weights and load.")
@click.option(
    "--virtual-clock", is_flag=True,
    help="Run arrivals and think times on simulated time (10 ms per step, no idle waits): "
    "one seed gives the same requests in the same order on any machine.",
)  # fmt: skip
@click.option(
    "--record-trace", type=click.Path(dir_okay=False, writable=True, path_type=Path),
    metavar="FILE",
    help="Write each turn sent as a trace line (JSONL: timestamp ms, input_length, "
    "output_length, hash_ids, block_size, conversation) for `gpumetrics kv-size`.",
)  # fmt: skip
@click.option(
    "--kv-predict-sample-rate", type=click.FloatRange(min=0, min_open=True, max=1),
    default=1.0, show_default=True,
    help="Highest SHARDS sample rate of the live ghost cache behind "
    "gpumetrics_engine_kv_predicted_hit_ratio (lowered to fit 8 MiB).",
)  # fmt: skip
@click.pass_context
def worker(ctx: click.Context, /, **_: object) -> None:
    """Run the reference worker (paged KV cache, prefix caching, continuous batching) under a
    multi-turn chat load; every step is reported through gpumetrics.hooks.

    Without --requests or --duration it stops after 50 turns.
    """
    s = load_settings(WorkerSettings, ctx)
    spec = resolve_model(s.model)
    need = _memory_need(spec, s)
    if s.device == "cpu" and not spec.is_moe:  # MoE is refused below, fit or not
        # before torch loads: a model too big must fail in milliseconds
        refuse_unless_fits(spec, need, host_memory_available(), "this host (MemAvailable)")
    require("worker", "gpumetrics worker")  # torch
    from ..worker import SCENARIOS, ByteTokenizer, ChatLoad, Engine, EngineConfig, run_load  # noqa: PLC0415
    from ..worker.runner import check_device  # noqa: PLC0415

    try:
        check_device(s.device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    if s.device != "cpu" and not spec.is_moe:
        from ..worker.cell_runner import cuda_memory_free  # noqa: PLC0415

        refuse_unless_fits(spec, need, *cuda_memory_free(s.device))
    try:
        tokenizer = ByteTokenizer(spec.vocab)
        if spec.is_moe:
            raise ValueError("mixture-of-experts models are not supported by the worker")
    except ValueError as exc:
        raise click.BadParameter(f"{spec.name}: {exc}", param_hint="--model") from None
    config = EngineConfig(
        spec,
        device=s.device,
        kv_blocks=s.kv_blocks,
        block_size=s.block_size,
        max_batch=s.max_batch,
        max_batch_tokens=s.max_batch_tokens,
        attention=s.attention,
        fast_decode=s.fast_decode,
        seed=s.seed,
        kv_predict_sample_rate=s.kv_predict_sample_rate,
    )
    overrides: dict[str, Any] = {"arrival_rate": s.arrival_rate, "think_time_s": s.think_time}
    scenario = replace(
        SCENARIOS[s.scenario],
        seed=s.seed,
        **{k: v for k, v in overrides.items() if v is not None},
    )
    try:
        engine = Engine(config)
    except ValueError as exc:  # e.g. --fast-decode on for a model it cannot run
        raise click.UsageError(str(exc)) from None
    except RuntimeError as exc:  # allocating the model or the KV pool
        raise click.ClickException(f"cannot set up the worker: {first_line(exc)}") from None
    fits = min(spec.max_context, s.kv_blocks * s.block_size)
    load = ChatLoad(scenario, tokenizer, max_context=fits)
    from ..worker.loadgen import VirtualClock  # noqa: PLC0415
    from ..worker.summary_table import summary_rows  # noqa: PLC0415
    from ..worker.trace import TraceRecorder  # noqa: PLC0415

    trace_file = _open_trace(s.record_trace)
    endpoint = engine.metrics.serve(*s.serve_at) if s.serve_at else None
    if endpoint is not None:
        click.echo(f"serving engine metrics at {endpoint.url}", err=True)
    try:
        summary = run_load(
            engine,
            load,
            requests=s.turns,
            duration_s=s.duration,
            virtual=VirtualClock() if s.virtual_clock else None,
            recorder=TraceRecorder(trace_file, s.block_size) if trace_file else None,
        )
    finally:
        if endpoint is not None:
            endpoint.close()
        if trace_file is not None:
            trace_file.close()
    if s.as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
        return
    table = Table(title=f"gpumetrics worker: {spec.name} on {summary.device}", show_header=False)
    for key, text in summary_rows(summary):
        table.add_row(key, text)
    Console().print(table)


def _open_trace(path: Path | None) -> IO[str] | None:
    """The trace file opened for writing, or a one-line usage error (exit 2)."""
    if path is None:
        return None
    try:
        return path.open("w", encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write {path}: {exc.strerror}", param_hint="--record-trace"
        ) from None


def _memory_need(spec: ModelSpec, s: WorkerSettings) -> MemoryNeed:
    """What the worker will allocate: weights and KV pool in its dtype, largest step."""
    return memory_need(
        spec,
        dtype="fp32" if s.device == "cpu" else "bf16",  # EngineConfig.resolved_dtype
        kv_tokens=s.kv_blocks * s.block_size,
        step_tokens=s.max_batch_tokens,
        sampling_sequences=s.max_batch,
    )


def _fmt(value: str | int | float) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e6 else f"{value:,.3f}"
    return f"{value:,}" if isinstance(value, int) else value
