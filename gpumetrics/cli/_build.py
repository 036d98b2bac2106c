"""Building the sidecar's parts from resolved settings (kept apart from option parsing)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import click

from ..config import EngineEntry
from ..errors import UnavailableError
from ..samples import Collection
from ..sources import Source
from ..sources.engine import EngineConfig, EngineSource
from ..sources.infiniband import InfinibandSource
from ..sources.nvml import NvmlSource
from ..testing import FakeNvml, parse_fake_gpus
from ..testing.fabric import FakeFabricSource
from ..testing.workloads import WORKLOADS
from .options import resolve_gpu

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


def _nvml(settings: dict[str, object], undo: list[Callable[[], None]]) -> Source:
    fake = settings["fake_gpus"]
    if fake:
        workload = WORKLOADS[str(settings["fake_workload"])]
        undo.append(FakeNvml(parse_fake_gpus(str(fake)), workload=workload).install().uninstall)
    gpu_spec = settings["gpu_spec"]
    spec = resolve_gpu(str(gpu_spec), None, "bf16", None, None, None) if gpu_spec else None
    try:
        return NvmlSource(
            gpu_spec=spec, gpm=bool(settings["gpm"]), processes=bool(settings["process_memory"])
        )
    except UnavailableError as exc:
        if settings["require_gpu"]:
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
    settings: dict[str, object], engines: tuple[EngineEntry, ...]
) -> tuple[list[Source], Callable[[], None]]:
    """Every source the settings ask for, and a function undoing fake installs."""
    undo: list[Callable[[], None]] = []
    sources: list[Source] = []

    def cleanup() -> None:
        for step in reversed(undo):
            step()

    try:
        if settings["nvml"]:
            sources.append(_nvml(settings, undo))
        if settings["infiniband"]:
            ib_root = Path(str(settings["ib_root"]))
            if settings["fake_ib"]:
                sources.append(FakeFabricSource(int(str(settings["fake_ib"])), epoch=time.time()))
            elif ib_root.is_dir():
                sources.append(InfinibandSource(ib_root))
            else:
                log.info("no InfiniBand sysfs at %s; IB metrics off", ib_root)
        gpus = _gpu_ids(sources)
        for entry in engines:
            config = EngineConfig(
                name=entry.name,
                url=entry.url,
                kind=entry.kind,
                model=entry.model,
                gpus=tuple(gpus.get(g, g) for g in entry.gpus),
                max_bytes=entry.max_bytes,
                timeout_s=entry.timeout_s,
            )
            sources.append(EngineSource(config))
    except BaseException:
        for source in sources:
            source.close()
        cleanup()
        raise
    return sources, cleanup
