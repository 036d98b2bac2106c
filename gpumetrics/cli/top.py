"""`gpumetrics top`: a live terminal view of one node, from a `serve` endpoint or from the
local sources directly. Thin: gpumetrics.view reads, models and draws."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console

from ..derive import DerivedGauges, parse_window
from ..errors import GpumetricsError
from ..hardware import DTYPES
from ..pipeline import Sampler
from ..settings import ServeSettings, TopSettings
from ..sources.infiniband import DEFAULT_ROOT as IB_ROOT
from ..testing import parse_fake_gpus
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
from .loader import load_settings
from .options import ENGINE, derived_window_option

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


def _endpoint(s: TopSettings) -> Endpoint:
    password = None
    if s.basic_auth_password_file is not None:
        password = s.basic_auth_password_file.read_text().rstrip("\r\n")
    try:
        return Endpoint(
            s.url,
            user=s.basic_auth_user,
            password=password,
            ca_file=s.ca_file,
            cert_file=s.cert_file,
            key_file=s.key_file,
            insecure=s.insecure,
        )
    except FetchError as exc:
        raise click.UsageError(str(exc)) from None


def _local_sampler(s: TopSettings) -> tuple[Sampler, Callable[[], None]]:
    """serve's sources for this machine (NVML, InfiniBand, the engines), sampled here."""
    sources_of = ServeSettings(
        address="127.0.0.1",
        port=0,
        interval=s.interval,
        derived_window=s.derived_window,
        require_gpu=False,
        fake_gpus=s.fake_gpus,
        fake_workload=s.fake_workload,
        fake_ib=s.fake_ib,
        nvml=True,
        gpm=True,
        nvlink_per_link=False,
        process_memory=False,
        infiniband=True,
        ib_root=IB_ROOT,
        gpu=None,
        engines=s.engines,
        include=(),
        exclude=(),
        web_config=None,
        otlp_endpoint=None,
        otlp_interval=60.0,
        otlp_headers=(),
        log_level="error",
    )
    try:
        fake = parse_fake_gpus(s.fake_gpus) if s.fake_gpus else None
        sources, undo = build_sources(sources_of, fake=fake)
    except GpumetricsError as exc:
        raise click.UsageError(str(exc)) from None
    derived = DerivedGauges(parse_window(s.derived_window))
    return Sampler(sources, interval=s.interval, derived=derived), undo


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
    "engines",
    type=ENGINE,
    multiple=True,
    help="Local mode: an engine /metrics to read (repeat).",
)
@derived_window_option("Local mode: window of the derived gauges (serve's own is used with --url).")
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
@click.pass_context
def top(ctx: click.Context, /, **_: object) -> None:
    """Live view of a node: naive GPU utilisation beside SM/tensor/DRAM activity, MFU, MBU,
    NVLink and InfiniBand, and per engine batch occupancy, KV usage, hit ratio, preemptions,
    tokens/s and the roofline bound.

    Reads a `gpumetrics serve` endpoint (--url), or with --local / --fake-gpus / --fake-ib /
    --engine this machine's sources directly. Ctrl-C quits.
    """
    s = load_settings(TopSettings, ctx)
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=_PIPE_WIDTH)
    if not s.reads_local:
        read = _read_remote(_endpoint(s), s.dtype)
        if s.once:
            view = read()
            if view.error is not None:
                raise click.ClickException(view.error)
            show(console, view)
            return
        _run(console, read, s.interval)
        return
    # Source warnings would scroll the frame away; failures show as missing rows instead.
    logging.getLogger("gpumetrics").setLevel(logging.ERROR)
    sampler, undo = _local_sampler(s)
    source = f"local ({s.fake_gpus or 'this machine'})"

    def read_local() -> NodeView:
        return build_view(points_of(sampler.snapshot()), source=source, dtype=s.dtype)

    try:
        if s.once:
            sampler.sample_once()  # two cycles, `interval` apart: the first rates
            threading.Event().wait(s.interval)
            sampler.sample_once()
            show(console, read_local())
            return
        sampler.start()
        _run(console, read_local, s.interval)
    finally:
        sampler.stop()
        undo()


def _run(console: Console, read: Callable[[], NodeView], interval: float) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        show_live(console, read, interval)
