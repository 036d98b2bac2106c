"""`gpumetrics serve`: the node sidecar. Samples sources in the background and serves
/metrics (Prometheus), /health and /ready."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click

from ..errors import GpumetricsError, UnavailableError
from ..export.prometheus import PrometheusEndpoint
from ..export.server import MetricsServer
from ..model import Collection
from ..pipeline import Sampler
from ..sources import Source
from ..sources.infiniband import DEFAULT_ROOT as IB_ROOT
from ..sources.infiniband import InfinibandSource
from ..sources.nvml import NvmlSource
from ..testing import FakeNvml, parse_fake_gpus
from ..testing.fabric import FakeFabricSource
from ..testing.workloads import WORKLOADS
from .options import resolve_gpu

__all__ = ["serve"]

log = logging.getLogger("gpumetrics.serve")


class _Unavailable:
    """Stands in for a source that could not start, so that `gpumetrics_source_up` says so
    (0, with the error code counted) instead of the source silently missing."""

    def __init__(self, name: str, error: UnavailableError) -> None:
        self._name, self._error = name, error

    @property
    def name(self) -> str:
        return self._name

    def collect(self, now: float) -> Collection:
        raise self._error

    def close(self) -> None:
        pass


def _nvml_source(
    fake_gpus: str | None,
    workload: str,
    require_gpu: bool,
    gpm: bool,
    processes: bool,
    gpu_spec: str | None,
) -> tuple[Source, Callable[[], None]]:
    """The NVML source (real or fake) and how to undo a fake install."""
    undo: Callable[[], None] = lambda: None  # noqa: E731
    if fake_gpus is not None:
        fake = FakeNvml(parse_fake_gpus(fake_gpus), workload=WORKLOADS[workload]).install()
        undo = fake.uninstall
    spec = resolve_gpu(gpu_spec, None, "bf16", None, None, None) if gpu_spec else None
    try:
        return NvmlSource(gpu_spec=spec, gpm=gpm, processes=processes), undo
    except UnavailableError as exc:
        if require_gpu:
            undo()
            raise click.ClickException(f"{exc} (--require-gpu is set)") from None
        log.warning("%s; serving without GPU metrics", exc)
        return _Unavailable("nvml", exc), undo


@click.command()
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
    "--fake-ib",
    type=click.IntRange(min=1),
    metavar="PORTS",
    help="Demo mode: a fake InfiniBand fabric of PORTS NDR ports with steady traffic "
    "(20 GB/s tx, 18 GB/s rx each).",
)
@click.option(
    "--gpu-spec",
    "gpu_spec",
    help="Override the spec-table peaks for every GPU (a table key or NVML name).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def serve(
    address: str,
    port: int,
    interval: float,
    require_gpu: bool,
    fake_gpus: str | None,
    fake_workload: str,
    nvml: bool,
    gpm: bool,
    process_memory: bool,
    infiniband: bool,
    ib_root: Path,
    fake_ib: int | None,
    gpu_spec: str | None,
    log_level: str,
) -> None:
    """Export GPU, interconnect and engine metrics for Prometheus.

    Hardware is sampled in the background; a scrape only renders the latest snapshot.
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sources: list[Source] = []
    undo: Callable[[], None] = lambda: None  # noqa: E731
    try:
        if nvml:
            source, undo = _nvml_source(
                fake_gpus, fake_workload, require_gpu, gpm, process_memory, gpu_spec
            )
            sources.append(source)
        if infiniband and fake_ib:
            sources.append(FakeFabricSource(fake_ib, epoch=time.time()))
        elif infiniband:
            if ib_root.is_dir():
                sources.append(InfinibandSource(ib_root))
            else:
                log.info("no InfiniBand sysfs at %s; IB metrics off", ib_root)
        sampler = Sampler(sources, interval=interval)
        endpoint = PrometheusEndpoint(sampler.snapshot)
        server = MetricsServer(address, port, endpoint.render, lambda: sampler.ready)
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
    log.info(
        "serving on http://%s:%d/metrics (sources: %s)",
        address,
        server.port,
        ", ".join(s.name for s in sources) or "none",
    )
    stop.wait()
    log.info("stopping")
    server.stop()
    sampler.stop()
    undo()
