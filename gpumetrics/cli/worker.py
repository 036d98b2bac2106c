"""`gpumetrics worker`: run the reference inference worker under a chat load and summarise.

The worker (torch) is imported only when the command runs, so the rest of the CLI works
without the `worker` extra.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..settings import WorkerSettings
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
@click.pass_context
def worker(ctx: click.Context, /, **_: object) -> None:
    """Run the reference worker (paged KV cache, prefix caching, continuous batching) under a
    multi-turn chat load; every step is reported through gpumetrics.hooks.

    Without --requests or --duration it stops after 50 turns.
    """
    s = load_settings(WorkerSettings, ctx)
    spec = resolve_model(s.model)
    try:
        from ..worker import SCENARIOS, ByteTokenizer, ChatLoad, Engine, EngineConfig, run_load  # noqa: PLC0415
        from ..worker.runner import check_device  # noqa: PLC0415
    except ImportError as exc:
        raise click.ClickException(
            f"the worker needs torch ({exc}); install it: pip install 'gpumetrics[worker]'"
        ) from None
    try:
        check_device(s.device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
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
        seed=s.seed,
    )
    overrides: dict[str, Any] = {"arrival_rate": s.arrival_rate, "think_time_s": s.think_time}
    scenario = replace(
        SCENARIOS[s.scenario],
        seed=s.seed,
        **{k: v for k, v in overrides.items() if v is not None},
    )
    engine = Engine(config)
    fits = min(spec.max_context, s.kv_blocks * s.block_size)
    load = ChatLoad(scenario, tokenizer, max_context=fits)
    endpoint = engine.metrics.serve(*s.serve_at) if s.serve_at else None
    if endpoint is not None:
        click.echo(f"serving engine metrics at {endpoint.url}", err=True)
    try:
        summary = run_load(engine, load, requests=s.turns, duration_s=s.duration)
    finally:
        if endpoint is not None:
            endpoint.close()
    if s.as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
        return
    table = Table(title=f"gpumetrics worker: {spec.name} on {summary.device}", show_header=False)
    for key, value in summary.as_dict().items():
        table.add_row(
            key,
            f"{value:,.3f}"
            if isinstance(value, float)
            else f"{value:,}"
            if isinstance(value, int)
            else value,
        )
    Console().print(table)


def _fmt(value: str | int | float) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e6 else f"{value:,.3f}"
    return f"{value:,}" if isinstance(value, int) else value
