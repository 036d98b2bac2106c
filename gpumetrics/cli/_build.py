"""Building the sidecar's sources from its settings (kept apart from option parsing)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

import click

from ..errors import UnavailableError
from ..hardware import GpuSpec
from ..samples import Collection
from ..settings import ServeSettings
from ..sources import Source
from ..sources.engine import EngineSource
from ..sources.infiniband import InfinibandSource
from ..sources.nvml import NvmlSource
from ..sources.nvml_processes import NvmlProcessReader
from ..sources.pods import PodAttributionSource
from ..sources.pods.kubelet import KubeletClient, grpc_available
from ..testing import FakeNvml, FakeProfile
from ..testing.fabric import FakeFabricSource
from ..testing.workloads import WORKLOADS

__all__ = ["build_sources"]

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


def _nvml(
    settings: ServeSettings,
    gpu: GpuSpec | None,
    fake: FakeProfile | None,
    undo: list[Callable[[], None]],
) -> Source:
    if fake is not None:
        workload = WORKLOADS[settings.fake_workload]
        undo.append(FakeNvml(fake, workload=workload).install().uninstall)
    try:
        return NvmlSource(
            gpu_spec=gpu,
            gpm=settings.gpm,
            processes=settings.process_memory,
            nvlink_per_link=settings.nvlink_per_link,
        )
    except UnavailableError as exc:
        if settings.require_gpu:
            raise click.ClickException(f"{exc} (--require-gpu is set)") from None
        log.warning("%s; serving without GPU metrics", exc)
        return _Unavailable("nvml", exc)


def _gpu_ids(sources: list[Source]) -> dict[str, str]:
    """Declared GPU (index or UUID) -> "INDEX:UUID" for the GPUs NVML sees, so that
    gpumetrics_engine_gpu_info carries both labels and joins the per-GPU peaks whichever way
    the user declared the engine's GPUs."""
    ids: dict[str, str] = {}
    for source in sources:
        if isinstance(source, NvmlSource):
            for device in source.devices:
                if not device.is_mig:
                    both = f"{device.index}:{device.uuid}"
                    ids[str(device.index)] = ids[device.uuid] = both
    return ids


def build_sources(
    settings: ServeSettings, *, gpu: GpuSpec | None = None, fake: FakeProfile | None = None
) -> tuple[list[Source], Callable[[], None]]:
    """Every source the settings ask for, and a function undoing fake installs. `gpu` (the
    resolved `--gpu`) replaces every GPU's peaks; `fake` is the resolved `--fake-gpus`."""
    undo: list[Callable[[], None]] = []
    sources: list[Source] = []

    def cleanup() -> None:
        for step in reversed(undo):
            step()

    try:
        if settings.nvml:
            sources.append(_nvml(settings, gpu, fake, undo))
        if settings.infiniband:
            if settings.fake_ib:
                sources.append(FakeFabricSource(settings.fake_ib, epoch=time.time()))
            elif settings.ib_root.is_dir():
                sources.append(InfinibandSource(settings.ib_root))
            else:
                log.info("no InfiniBand sysfs at %s; IB metrics off", settings.ib_root)
        pods = _pods(settings)
        if pods is not None:
            sources.append(pods)
        gpus = _gpu_ids(sources)
        for engine in settings.engines:
            resolved = tuple(gpus.get(g, g) for g in engine.gpus)
            sources.append(EngineSource(replace(engine, gpus=resolved)))
    except BaseException:
        for source in sources:
            source.close()
        cleanup()
        raise
    return sources, cleanup


def _pods(settings: ServeSettings) -> Source | None:
    """The pod attribution source `--pod-attribution` asks for (after NVML, so fake GPUs are
    installed): kubelet when asked, or in auto mode when its socket and grpcio are there;
    otherwise NVML process ids and their cgroups."""
    mode = settings.pod_attribution
    if mode == "off":
        return None
    socket = settings.kubelet_socket
    use_kubelet = mode == "kubelet" or (mode == "auto" and socket.exists() and grpc_available())
    try:
        processes: NvmlProcessReader | None = NvmlProcessReader()
    except UnavailableError as exc:
        if not use_kubelet:
            log.warning("%s; no pod attribution without NVML or the kubelet", exc)
            return _Unavailable("pods", exc)
        log.warning("%s; pod attribution from the kubelet only (no per-pod utilization)", exc)
        processes = None
    kubelet = KubeletClient(socket) if use_kubelet else None
    log.info("pod attribution from %s", f"the kubelet at {socket}" if kubelet else "cgroups")
    return PodAttributionSource(kubelet=kubelet, processes=processes)
