"""`gpumetrics top`: a live terminal view of one node, from a `serve` endpoint or from the
local sources directly. Thin: gpumetrics.view reads, models and draws."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from ..config import parse_engine_flag
from ..derive import DerivedGauges, parse_window
from ..errors import GpumetricsError
from ..hardware import DTYPES
from ..pipeline import Sampler
from ..sources.infiniband import DEFAULT_ROOT as IB_ROOT
from ..testing.workloads import WORKLOADS
from ..view import (
    Endpoint,
    FetchError,
    NodeView,
    build_view,
    points_of,
    read_points,
    show,
    show_live,
)
from ._build import build_sources

__all__ = ["top"]

_EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)
#: Width of a frame written into a pipe or file (a terminal uses its own).
_PIPE_WIDTH = 160


def _read_remote(endpoint: Endpoint, dtype: str) -> Callable[[], NodeView]:
    def read() -> NodeView:
        try:
            return build_view(read_points(endpoint), source=endpoint.url, dtype=dtype)
        except FetchError as exc:
            return NodeView(endpoint.url, dtype, None, (), (), (), error=str(exc))

    return read


def _endpoint(o: dict[str, Any]) -> Endpoint:
    password = None
    if o["basic_auth_password_file"] is not None:
        password = o["basic_auth_password_file"].read_text().rstrip("\r\n")
    try:
        return Endpoint(
            o["url"],
            user=o["basic_auth_user"],
            password=password,
            ca_file=o["ca_file"],
            cert_file=o["cert_file"],
            key_file=o["key_file"],
            insecure=o["insecure"],
        )
    except FetchError as exc:
        raise click.UsageError(str(exc)) from None


def _local_sampler(o: dict[str, Any], interval: float) -> tuple[Sampler, Callable[[], None]]:
    settings: dict[str, object] = {
        "nvml": True,
        "fake_gpus": o["fake_gpus"],
        "fake_workload": o["fake_workload"],
        "gpu_spec": None,
        "gpm": True,
        "process_memory": False,
        "require_gpu": False,
        "infiniband": True,
        "ib_root": IB_ROOT,
        "fake_ib": o["fake_ib"],
    }
    try:
        engines = tuple(parse_engine_flag(flag) for flag in o["engine_flags"])
        sources, undo = build_sources(settings, engines)
    except GpumetricsError as exc:
        raise click.UsageError(str(exc)) from None
    derived = DerivedGauges(parse_window(o["derived_window"]))
    return Sampler(sources, interval=interval, derived=derived), undo


def _window(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_window(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


@click.command()
@click.option(
    "--url",
    default="http://127.0.0.1:9835/metrics",
    show_default=True,
    help="The `gpumetrics serve` endpoint to read.",
)
@click.option("--basic-auth-user", metavar="USER", help="Basic-auth user for --url.")
@click.option(
    "--basic-auth-password-file", type=_EXISTING, help="File holding the basic-auth password."
)
@click.option("--ca-file", type=_EXISTING, help="CA certificate(s) to trust for https.")
@click.option("--cert-file", type=_EXISTING, help="Client certificate (with --key-file).")
@click.option("--key-file", type=_EXISTING, help="Client certificate's private key.")
@click.option("--insecure", is_flag=True, help="Do not verify the server's certificate.")
@click.option(
    "--local",
    is_flag=True,
    help="Read this machine's sources (NVML, InfiniBand, --engine) instead of --url.",
)
@click.option(
    "--fake-gpus", metavar="SPEC", help="Local demo sources: simulated GPUs (e.g. h200x8)."
)
@click.option(
    "--fake-workload",
    type=click.Choice(sorted(WORKLOADS)),
    default="steady",
    show_default=True,
    help="What the fake GPUs do.",
)
@click.option("--fake-ib", type=click.IntRange(min=1), metavar="PORTS", help="Fake IB ports.")
@click.option(
    "--engine",
    "engine_flags",
    multiple=True,
    metavar="NAME=URL[,kind=K,model=M,gpus=0+1]",
    help="Local mode: an engine /metrics to read (repeat).",
)
@click.option(
    "--derived-window",
    default="5m",
    show_default=True,
    callback=_window,
    metavar="DURATION",
    help="Local mode: window of the derived gauges (serve's own is used with --url).",
)
@click.option(
    "--dtype",
    type=click.Choice(DTYPES),
    default="bf16",
    show_default=True,
    help="The dtype whose peak MFU and the roofline bound are read against.",
)
@click.option(
    "--interval",
    type=click.FloatRange(0.1, 3600),
    default=2.0,
    show_default=True,
    help="Seconds between frames (and between local sampling cycles).",
)
@click.option("--once", is_flag=True, help="Print one frame and exit (for scripts and tests).")
def top(**o: Any) -> None:
    """Live view of a node: naive GPU utilisation beside SM/tensor/DRAM activity, MFU, MBU,
    NVLink and InfiniBand, and per engine batch occupancy, KV usage, hit ratio, preemptions,
    tokens/s and the roofline bound.

    Reads a `gpumetrics serve` endpoint (--url), or with --local / --fake-gpus / --fake-ib /
    --engine this machine's sources directly. Ctrl-C quits.
    """
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=_PIPE_WIDTH)
    interval = float(o["interval"])
    local = o["local"] or o["fake_gpus"] or o["fake_ib"] or o["engine_flags"]
    if not local:
        read = _read_remote(_endpoint(o), o["dtype"])
        if o["once"]:
            view = read()
            if view.error is not None:
                raise click.ClickException(view.error)
            show(console, view)
            return
        _run(console, read, interval)
        return
    # Source warnings would scroll the frame away; failures show as missing rows instead.
    logging.getLogger("gpumetrics").setLevel(logging.ERROR)
    sampler, undo = _local_sampler(o, interval)
    source = f"local ({o['fake_gpus'] or 'this machine'})"

    def read_local() -> NodeView:
        return build_view(points_of(sampler.snapshot()), source=source, dtype=o["dtype"])

    try:
        if o["once"]:
            sampler.sample_once()  # two cycles, `interval` apart: the first rates
            threading.Event().wait(interval)
            sampler.sample_once()
            show(console, read_local())
            return
        sampler.start()
        _run(console, read_local, interval)
    finally:
        sampler.stop()
        undo()


def _run(console: Console, read: Callable[[], NodeView], interval: float) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        show_live(console, read, interval)
