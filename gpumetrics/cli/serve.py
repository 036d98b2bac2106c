"""`gpumetrics serve`: the node sidecar. Samples sources in the background and serves
/metrics (Prometheus), /health and /ready; optionally pushes OTLP.

Settings come from, highest first: flags, environment variables (GPUMETRICS_SERVE_<OPTION>),
the --config TOML file, defaults (docs/configuration.md); `load_settings` turns them into one
`ServeSettings`, which `_prepare` checks (metric globs, web config, fake GPUs, the --gpu key)
before anything starts, so `--print-config` shows only settings that would run.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import click

from .. import catalog
from ..catalog import MetricSpec, Source
from ..config import FileConfig, WebConfig, load_config, load_web_config, select_specs
from ..derive import DerivedGauges, parse_window
from ..errors import ConfigError, GpumetricsError
from ..extras import MissingExtraError, require
from ..hardware import GpuSpec, find_gpu
from ..settings import ServeSettings
from ..sources import Source as SourceLike
from ..sources.infiniband import DEFAULT_ROOT as IB_ROOT
from ..sources.pods import MODES
from ..sources.pods.kubelet import DEFAULT_SOCKET
from ..testing import FakeProfile, parse_fake_gpus
from ..testing.workloads import WORKLOADS
from . import BadInput
from ._build import build_sources
from ._lifecycle import SHUTDOWN_S, SWITCH_INTERVAL_S, Deadline, signals_handled
from .loader import load_settings
from .options import ENGINE, HTTP_URL, KEY_VALUE, LISTEN_ADDRESS, FiniteRange, derived_window_option

__all__ = ["serve"]

log = logging.getLogger("gpumetrics.serve")


def _load_file(ctx: click.Context, _: click.Parameter, value: Path | None) -> Path | None:
    """Eager: read --config first so its values become the defaults of the other options
    (lists included: a list on the command line or in the environment replaces the file's)."""
    if value is None:
        return None
    try:
        loaded: FileConfig = load_config(value)
    except GpumetricsError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param_hint="--config") from None
    lists = {
        "engines": loaded.engines,
        "include": loaded.include,
        "exclude": loaded.exclude,
        "otlp_headers": tuple(loaded.otlp_headers.items()),
    }
    ctx.default_map = {
        **(ctx.default_map or {}),
        **loaded.options,
        **{k: v for k, v in lists.items() if v},
    }
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
@click.option(
    "--address",
    type=LISTEN_ADDRESS,
    default="0.0.0.0",
    show_default=True,
    help="Listen address: IPv4, IPv6 (`::`, `::1`) or a host name.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=9835, show_default=True)
@click.option(
    "--interval",
    type=FiniteRange(0.1, 3600),
    default=1.0,
    show_default=True,
    help="Seconds between sampling cycles of each source.",
)
@derived_window_option(
    "Window of the derived gauges (MFU, MBU, hit ratio, ...; METRICS.md), as in the "
    "recording rules' rate5m: 30s, 5m, 1h. Their `window` label says which."
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
    help="What the fake GPUs do: default cycles phases, steady is one memory-bound decode "
    "phase, h200 replays the phases measured on a real H200 (tests/data/h200).",
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
@click.option(
    "--nvlink-per-link",
    is_flag=True,
    help="Per-link NVLink series (bytes, raw bytes, state, speed, errors: 162 per 18-link GPU) "
    "besides the per-GPU totals exported by default.",
)
@click.option("--process-memory", is_flag=True, help="Per-process GPU memory series.")
@click.option(
    "--pod-attribution",
    type=click.Choice(MODES),
    default="off",
    show_default=True,
    help="Which pod holds each GPU (gpumetrics_gpu_pod_info) and per-pod SM/memory use: "
    "kubelet reads the PodResources socket (needs gpumetrics[k8s]), cgroup traces NVML "
    "process ids to /proc/PID/cgroup, auto takes kubelet when its socket and grpcio are there.",
)
@click.option(
    "--kubelet-socket",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_SOCKET,
    show_default=True,
    help="The kubelet PodResources socket (--pod-attribution kubelet|auto).",
)
@click.option(
    "--infiniband/--no-infiniband",
    default=True,
    show_default=True,
    help="InfiniBand/RoCE port metrics (skipped when the sysfs root is absent).",
)
@click.option("--ib-root", type=click.Path(path_type=Path), default=IB_ROOT, show_default=True)
@click.option(
    "--gpu",
    metavar="NAME",
    help="Use this GPU's spec-table peaks for every GPU (a table key such as h200, or an "
    "NVML name) [default: each GPU's own row].",
)
@click.option(
    "--engine",
    "engines",
    type=ENGINE,
    multiple=True,
    envvar="GPUMETRICS_SERVE_ENGINE",
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
    "--max-connections",
    type=click.IntRange(1, 65536),
    help="Open HTTP connections at most (overrides the web config's max_connections; 256).",
)
@click.option(
    "--otlp-endpoint",
    type=HTTP_URL,
    metavar="URL",
    help="Also push OTLP/HTTP metrics here (base URL; /v1/metrics is appended).",
)
@click.option(
    "--otlp-interval",
    type=FiniteRange(1, 3600),
    default=10.0,
    show_default=True,
    help="Seconds between OTLP exports.",
)
@click.option(
    "--otlp-header",
    "otlp_headers",
    type=KEY_VALUE,
    multiple=True,
    envvar="GPUMETRICS_SERVE_OTLP_HEADER",
    help="An HTTP header for OTLP exports (repeat; replaces the config file's headers).",
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
def serve(ctx: click.Context, /, **_: object) -> None:
    """Export GPU, interconnect and engine metrics for Prometheus (and OTLP).

    Hardware is sampled in the background; a scrape only renders the latest snapshot.
    """
    settings = load_settings(ServeSettings, ctx, actions=("print_config",))
    try:
        prepared = _prepare(settings)
    except MissingExtraError:
        raise  # one line, exit 2 (cli.ExtraNeeded)
    except GpumetricsError as exc:
        raise click.UsageError(str(exc)) from None
    if ctx.params["print_config"]:
        click.echo(json.dumps(_printable(settings, prepared), indent=2, default=str))
        return
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _run(settings, prepared)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What the settings resolve to before anything starts."""

    specs: tuple[MetricSpec, ...]
    web: WebConfig | None
    gpu: GpuSpec | None
    fake: FakeProfile | None


def _prepare(settings: ServeSettings) -> _Prepared:
    """Resolve and check what can be checked without starting anything; GpumetricsError names
    the bad setting."""
    if parse_window(settings.derived_window) < 2 * settings.interval:
        raise ConfigError(
            "--derived-window",
            f"{settings.derived_window} holds fewer than two sampling cycles of --interval "
            f"{settings.interval:g}s",
        )
    if settings.pod_attribution == "kubelet":
        require("k8s", "gpumetrics serve --pod-attribution kubelet")
    web = load_web_config(settings.web_config) if settings.web_config else None
    if settings.max_connections is not None:
        web = replace(web or WebConfig(), max_connections=settings.max_connections)
    if web is not None and web.tls:  # a certificate, key or cipher list that cannot work
        from ..export.http.tls import server_context  # noqa: PLC0415

        server_context(web)
    if web is not None and web.basic_auth_users:
        require("web", "basic auth (basic_auth_users in --web-config)")
    if settings.otlp_endpoint:
        require("otel", "gpumetrics serve --otlp-endpoint")
    return _Prepared(
        specs=select_specs(catalog.ALL, settings.include, settings.exclude),
        web=web,
        gpu=find_gpu(settings.gpu) if settings.gpu else None,
        fake=parse_fake_gpus(settings.fake_gpus) if settings.fake_gpus else None,
    )


def _printable(settings: ServeSettings, prepared: _Prepared) -> dict[str, object]:
    """The effective settings as JSON-ready data (OTLP header values hidden)."""
    shown = asdict(settings)
    shown["otlp_headers"] = [name for name, _ in settings.otlp_headers]
    shown["metrics"] = len(prepared.specs)
    return {k: str(v) if isinstance(v, Path) else v for k, v in shown.items()}


def _run(settings: ServeSettings, prepared: _Prepared) -> None:
    # A thread that wants the GIL waits up to the switch interval for each hand-over (5 ms by
    # default); a scrape or a GPU cycle needs several while an engine page is parsed, so 1 ms
    # keeps them in the latency budget (benchmarks/chaos_serve.py, BENCHMARKS.md).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    stop = threading.Event()
    with signals_handled(stop):  # from the start: a signal during start-up still cleans up
        _serve(settings, prepared, stop)


def _serve(settings: ServeSettings, prepared: _Prepared, stop: threading.Event) -> None:
    if settings.otlp_endpoint:
        # Imported only when used: the OpenTelemetry SDK costs ~10 MiB of resident memory.
        from ..export.otel import OtelExporter  # noqa: PLC0415
    # Imported here: prometheus_client and bcrypt are needed only once serving starts.
    from ..export.prometheus import PrometheusEndpoint  # noqa: PLC0415
    from ..export.server import ListenError, MetricsServer  # noqa: PLC0415
    from ..pipeline import Sampler  # noqa: PLC0415

    try:
        sources, undo = build_sources(settings, gpu=prepared.gpu, fake=prepared.fake)
    except GpumetricsError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        derives = any(spec.source is Source.DERIVED for spec in prepared.specs)
        window = parse_window(settings.derived_window)
        derived = DerivedGauges(window) if derives else None
        sampler = Sampler(sources, interval=settings.interval, derived=derived)
        endpoint = PrometheusEndpoint(sampler.snapshot, prepared.specs)
        try:
            server = MetricsServer(
                settings.address,
                settings.port,
                endpoint.render,
                lambda: sampler.ready,
                prepared.web,
            )
        except ListenError as exc:  # a bad address or a privileged port: one line, exit 2
            raise BadInput(str(exc)) from None
        otel = (
            OtelExporter(
                sampler.snapshot,
                settings.otlp_endpoint,
                interval_s=settings.otlp_interval,
                headers=dict(settings.otlp_headers),
                specs=prepared.specs,
            )
            if settings.otlp_endpoint
            else None
        )
    except GpumetricsError as exc:
        _close(sources, undo)
        raise click.ClickException(str(exc)) from None
    except BaseException:
        _close(sources, undo)
        raise
    try:
        sampler.start()
        server.start()
        if otel is not None:
            otel.start()
        log.info(
            "serving on %s://%s:%d/metrics (sources: %s)",
            "https" if prepared.web is not None and prepared.web.tls else "http",
            settings.address,
            server.port,
            ", ".join(s.name for s in sources) or "none",
        )
        stop.wait()
    finally:
        _shutdown(server, otel, sampler, undo)


class _Stoppable(Protocol):
    def stop(self) -> None: ...


class _Flushable(Protocol):
    def shutdown(self, timeout_s: float | None = None) -> bool: ...


class _SamplerLike(Protocol):
    def stop(self, timeout: float = ...) -> None: ...


def _shutdown(
    server: _Stoppable, otel: _Flushable | None, sampler: _SamplerLike, undo: Callable[[], None]
) -> None:
    """Stop everything within one deadline (SHUTDOWN_S for all parts together), then remove
    what the fakes installed (temp dirs, the fake NVML)."""
    log.info("stopping")
    deadline = Deadline(SHUTDOWN_S, floor=0.1)
    try:
        server.stop()
        if otel is not None and not otel.shutdown(timeout_s=min(2.0, deadline.left())):
            log.warning("final OTLP export did not complete")
        sampler.stop(timeout=deadline.left())  # closes every source, hung or not
    finally:
        undo()


def _close(sources: Sequence[SourceLike], undo: Callable[[], None]) -> None:
    """Close what already started (e.g. the XID thread) when start-up fails."""
    try:
        for source in sources:
            source.close()
    finally:
        undo()
