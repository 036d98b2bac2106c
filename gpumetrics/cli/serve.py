"""`gpumetrics serve`: the node sidecar. Samples sources in the background and serves
/metrics (Prometheus), /health and /ready; optionally pushes OTLP.

Settings come from, highest first: flags, environment variables (GPUMETRICS_SERVE_<OPTION>),
the --config TOML file, defaults (docs/configuration.md).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from .. import catalog
from ..catalog import Source
from ..config import (
    FileConfig,
    load_config,
    load_web_config,
    parse_engine_flag,
    select_specs,
)
from ..derive import DerivedGauges, parse_window
from ..errors import GpumetricsError
from ..export.prometheus import PrometheusEndpoint
from ..export.server import MetricsServer
from ..pipeline import Sampler
from ..sources.infiniband import DEFAULT_ROOT as IB_ROOT
from ..testing.workloads import WORKLOADS
from ._build import build_sources

__all__ = ["serve"]

log = logging.getLogger("gpumetrics.serve")


def _window(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_window(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


def _load_file(ctx: click.Context, _: click.Parameter, value: Path | None) -> Path | None:
    """Eager: read --config first so its values become the defaults of the other options."""
    if value is None:
        return None
    try:
        loaded = load_config(value)
    except GpumetricsError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param_hint="--config") from None
    ctx.default_map = {**(ctx.default_map or {}), **loaded.options}
    ctx.meta["gpumetrics.config"] = loaded
    return value


@click.command()
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    callback=_load_file,
    is_eager=True,
    expose_value=False,
    help="TOML config file (docs/configuration.md); flags and env vars override it.",
)
@click.option("--address", default="0.0.0.0", show_default=True, help="Listen address.")
@click.option("--port", type=click.IntRange(0, 65535), default=9835, show_default=True)
@click.option(
    "--interval",
    type=click.FloatRange(0.1, 3600),
    default=1.0,
    show_default=True,
    help="Seconds between sampling cycles of each source.",
)
@click.option(
    "--derived-window",
    default="5m",
    show_default=True,
    callback=_window,
    metavar="DURATION",
    help="Window of the derived gauges (MFU, MBU, hit ratio, ...; METRICS.md), as in the "
    "recording rules' rate5m: 30s, 5m, 1h. Their `window` label says which.",
)
@click.option(
    "--require-gpu",
    is_flag=True,
    help="Exit with an error when NVML is unavailable instead of serving without it.",
)
@click.option(
    "--fake-gpus",
    metavar="SPEC",
    help="Demo mode without GPUs: h200x8, h100x8, a100, mig or minimal (FakeNvml).",
)
@click.option(
    "--fake-workload",
    type=click.Choice(sorted(WORKLOADS)),
    default="default",
    show_default=True,
    help="What the fake GPUs do: cycling phases, or one steady memory-bound decode phase.",
)
@click.option(
    "--fake-ib",
    type=click.IntRange(min=1),
    metavar="PORTS",
    help="Demo mode: a fake InfiniBand fabric of PORTS NDR ports with steady traffic "
    "(20 GB/s tx, 18 GB/s rx each).",
)
@click.option("--nvml/--no-nvml", default=True, show_default=True, help="GPU metrics via NVML.")
@click.option(
    "--gpm/--no-gpm",
    default=True,
    show_default=True,
    help="Hopper+ GPM profiling metrics (SM/tensor/DRAM active).",
)
@click.option("--process-memory", is_flag=True, help="Per-process GPU memory series.")
@click.option(
    "--infiniband/--no-infiniband",
    default=True,
    show_default=True,
    help="InfiniBand/RoCE port metrics (skipped when the sysfs root is absent).",
)
@click.option("--ib-root", type=click.Path(path_type=Path), default=IB_ROOT, show_default=True)
@click.option(
    "--gpu-spec", help="Override the spec-table peaks for every GPU (a table key or NVML name)."
)
@click.option(
    "--engine",
    "engine_flags",
    multiple=True,
    metavar="NAME=URL[,kind=K,model=M,gpus=0+1]",
    help="An engine /metrics to scrape (repeat; replaces the config file's engines).",
)
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Export only metrics matching (repeat; default all).",
)
@click.option("--exclude", multiple=True, metavar="GLOB", help="Do not export these metrics.")
@click.option(
    "--web-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Prometheus-style web config (YAML): TLS, client certificates, basic auth.",
)
@click.option(
    "--otlp-endpoint",
    metavar="URL",
    help="Also push OTLP/HTTP metrics here (base URL; /v1/metrics is appended).",
)
@click.option(
    "--otlp-interval",
    type=click.FloatRange(1, 3600),
    default=10.0,
    show_default=True,
    help="Seconds between OTLP exports.",
)
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the effective settings as JSON and exit (shows what won).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.pass_context
def serve(ctx: click.Context, /, **settings: Any) -> None:
    """Export GPU, interconnect and engine metrics for Prometheus (and OTLP).

    Hardware is sampled in the background; a scrape only renders the latest snapshot.
    """
    file: FileConfig = ctx.meta.get("gpumetrics.config", FileConfig())
    try:
        engines = tuple(parse_engine_flag(e) for e in settings["engine_flags"]) or file.engines
        specs = select_specs(
            catalog.ALL,
            tuple(settings["include"]) or file.include,
            tuple(settings["exclude"]) or file.exclude,
        )
        web = load_web_config(settings["web_config"]) if settings["web_config"] else None
    except GpumetricsError as exc:
        raise click.UsageError(str(exc)) from None
    if parse_window(settings["derived_window"]) < 2 * float(settings["interval"]):
        raise click.BadParameter(
            f"{settings['derived_window']} holds fewer than two sampling cycles of "
            f"--interval {settings['interval']:g}s",
            param_hint="--derived-window",
        )
    if settings["print_config"]:
        shown = {
            k: str(v) if isinstance(v, Path) else v
            for k, v in settings.items()
            if k not in ("engine_flags", "print_config")
        }
        shown["include"] = tuple(settings["include"]) or file.include
        shown["exclude"] = tuple(settings["exclude"]) or file.exclude
        shown["engines"] = [asdict(e) for e in engines]
        shown["metrics"] = len(specs)
        click.echo(json.dumps(shown, indent=2, default=str))
        return
    logging.basicConfig(
        level=str(settings["log_level"]).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _run(settings, engines, specs, web, file.otlp_headers)


def _run(
    settings: dict[str, Any],
    engines: tuple[Any, ...],
    specs: tuple[Any, ...],
    web: Any,
    otlp_headers: dict[str, str] | Any,
) -> None:
    if settings["otlp_endpoint"]:
        # Imported only when used: the OpenTelemetry SDK costs ~10 MiB of resident memory.
        from ..export.otel import OtelExporter  # noqa: PLC0415
    try:
        sources, undo = build_sources(settings, engines)
    except GpumetricsError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        derives = any(spec.source is Source.DERIVED for spec in specs)
        derived = DerivedGauges(parse_window(settings["derived_window"])) if derives else None
        sampler = Sampler(sources, interval=float(settings["interval"]), derived=derived)
        endpoint = PrometheusEndpoint(sampler.snapshot, specs)
        server = MetricsServer(
            settings["address"], settings["port"], endpoint.render, lambda: sampler.ready, web
        )
        otel = (
            OtelExporter(
                sampler.snapshot,
                settings["otlp_endpoint"],
                interval_s=float(settings["otlp_interval"]),
                headers=dict(otlp_headers),
                specs=specs,
            )
            if settings["otlp_endpoint"]
            else None
        )
    except GpumetricsError as exc:
        for source in sources:  # stop what already started (e.g. the XID thread)
            source.close()
        undo()
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sampler.start()
    server.start()
    if otel is not None:
        otel.start()
    log.info(
        "serving on %s://%s:%d/metrics (sources: %s)",
        "https" if web is not None and web.tls else "http",
        settings["address"],
        server.port,
        ", ".join(s.name for s in sources) or "none",
    )
    stop.wait()
    log.info("stopping")
    server.stop()
    if otel is not None and not otel.shutdown():  # flushes one last export
        log.warning("final OTLP export did not complete")
    sampler.stop()
    undo()
