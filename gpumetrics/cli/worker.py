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

from ..costmodel import ModelSpec
from ..costmodel.fit import MemoryNeed, host_memory_available, memory_need
from ._fit import refuse_unless_fits
from .options import resolve_model

__all__ = ["worker"]

#: gpumetrics.worker.ATTENTION_PATHS (not imported here: that would import torch).
_ATTENTION_PATHS = ("auto", "eager", "sdpa")
#: gpumetrics.worker.fast_decode.FAST_DECODE_MODES (likewise).
_FAST_DECODE_MODES = ("auto", "on", "off")


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(
            f"{text!r} is not ADDR:PORT (e.g. 127.0.0.1:9400)", param_hint="--serve"
        )
    return host.strip("[]") or "127.0.0.1", int(port)


@click.command()
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option(
    "--model",
    "model_name",
    default="tiny",
    show_default=True,
    help="tiny (CPU tests), 1b (Llama-3.2-1B shape), any cost-model preset, or a config.json.",
)
@click.option("--kv-blocks", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--block-size", type=click.IntRange(min=1), default=16, show_default=True)
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
@click.option("--serve", "serve_at", metavar="ADDR:PORT", help="Serve the hooks' /metrics here.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--seed", type=int, default=0, show_default=True, help="Weights and load.")
@click.option(
    "--virtual-clock", is_flag=True,
    help="Run arrivals and think times on simulated time (10 ms per step, no idle waits): "
    "one seed gives the same requests in the same order on any machine.",
)  # fmt: skip
def worker(**o: Any) -> None:
    """Run the reference worker (paged KV cache, prefix caching, continuous batching) under a
    multi-turn chat load; every step is reported through gpumetrics.hooks.

    Without --requests or --duration it stops after 50 turns.
    """
    if o["requests"] is not None and o["duration"] is not None:
        raise click.UsageError("give --requests or --duration, not both")
    spec = resolve_model(o["model_name"])
    serve_at = _address(o["serve_at"]) if o["serve_at"] else None
    need = _memory_need(spec, o)
    if o["device"] == "cpu" and not spec.is_moe:  # MoE is refused below, fit or not
        # before torch loads: a model too big must fail in milliseconds
        refuse_unless_fits(spec, need, host_memory_available(), "this host (MemAvailable)")
    try:
        from ..worker import SCENARIOS, ByteTokenizer, ChatLoad, Engine, EngineConfig, run_load  # noqa: PLC0415
        from ..worker.runner import check_device  # noqa: PLC0415
    except ImportError as exc:
        raise click.ClickException(
            f"the worker needs torch ({exc}); install it: pip install 'gpumetrics[worker]'"
        ) from None
    try:
        check_device(o["device"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    if o["device"] != "cpu" and not spec.is_moe:
        from ..worker.cell_runner import cuda_memory_free  # noqa: PLC0415

        refuse_unless_fits(spec, need, *cuda_memory_free(o["device"]))
    try:
        tokenizer = ByteTokenizer(spec.vocab)
        if spec.is_moe:
            raise ValueError("mixture-of-experts models are not supported by the worker")
    except ValueError as exc:
        raise click.BadParameter(f"{spec.name}: {exc}", param_hint="--model") from None
    config = EngineConfig(
        spec,
        device=o["device"],
        kv_blocks=o["kv_blocks"],
        block_size=o["block_size"],
        max_batch=o["max_batch"],
        max_batch_tokens=o["max_batch_tokens"],
        attention=o["attention"],
        fast_decode=o["fast_decode"],
        seed=o["seed"],
    )
    overrides = {"arrival_rate": o["arrival_rate"], "think_time_s": o["think_time"]}
    scenario = replace(
        SCENARIOS[o["scenario"]],
        seed=o["seed"],
        **{k: v for k, v in overrides.items() if v is not None},
    )
    try:
        engine = Engine(config)
    except ValueError as exc:  # e.g. --fast-decode on for a model it cannot run
        raise click.UsageError(str(exc)) from None
    fits = min(spec.max_context, o["kv_blocks"] * o["block_size"])
    load = ChatLoad(scenario, tokenizer, max_context=fits)
    from ..worker.loadgen import VirtualClock  # noqa: PLC0415
    from ..worker.summary_table import summary_rows  # noqa: PLC0415

    requests = o["requests"] if o["requests"] is not None or o["duration"] else 50
    endpoint = engine.metrics.serve(*serve_at) if serve_at else None
    if endpoint is not None:
        click.echo(f"serving engine metrics at {endpoint.url}", err=True)
    try:
        summary = run_load(
            engine,
            load,
            requests=requests,
            duration_s=o["duration"],
            virtual=VirtualClock() if o["virtual_clock"] else None,
        )
    finally:
        if endpoint is not None:
            endpoint.close()
    if o["as_json"]:
        click.echo(json.dumps(summary.as_dict(), indent=2))
        return
    table = Table(title=f"gpumetrics worker: {spec.name} on {summary.device}", show_header=False)
    for key, text in summary_rows(summary):
        table.add_row(key, text)
    Console().print(table)


def _memory_need(spec: ModelSpec, o: dict[str, Any]) -> MemoryNeed:
    """What the worker will allocate: weights and KV pool in its dtype, largest step."""
    return memory_need(
        spec,
        dtype="fp32" if o["device"] == "cpu" else "bf16",  # EngineConfig.resolved_dtype
        kv_tokens=o["kv_blocks"] * o["block_size"],
        step_tokens=o["max_batch_tokens"],
        sampling_sequences=o["max_batch"],
    )


def _fmt(value: str | int | float) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e6 else f"{value:,.3f}"
    return f"{value:,}" if isinstance(value, int) else value
