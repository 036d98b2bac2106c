"""NVML's view of who runs on each GPU, for pod attribution (`gpumetrics.sources.pods`).

Per GPU and MIG device: the compute processes (nvmlDeviceGetComputeRunningProcesses, `nvidia-smi
--query-compute-apps=pid`) and, on whole GPUs, each process's SM and memory utilization since
the previous read (nvmlDeviceGetProcessUtilization, `nvidia-smi pmon -s u`: the driver keeps
per-process samples, each in whole percent of the GPU; a process with several samples since the
last read gets their mean). This module and the other `nvml*.py` are the only pynvml importers.

    reader = NvmlProcessReader()        # inside FakeNvml(...) or on a real driver
    for gpu in reader.read(errors):     # one GpuProcesses per device
        ...
    reader.close()
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pynvml

from .nvml_devices import NvmlDevice, discover, read_driver
from .nvml_lib import GpuLostError, error_name, init_nvml, note_error, shutdown_nvml
from .pods.model import GpuProcesses, ProcessUse

__all__ = ["NvmlProcessReader"]

_NO_SAMPLES = frozenset({pynvml.NVML_ERROR_NOT_FOUND, pynvml.NVML_SUCCESS})
_ABSENT = frozenset({pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND})


class NvmlProcessReader:
    """Reads `GpuProcesses` for every device found at start (raises UnavailableError, with a
    hint, when NVML cannot be initialised). Not thread-safe: one sampler thread calls it."""

    def __init__(self) -> None:
        init_nvml()
        self._closed = False
        errors: list[str] = []
        try:
            devices, lost = discover(read_driver(errors), None, errors)
        except BaseException:
            shutdown_nvml()
            raise
        self._devices = tuple(d for d in devices if d.index not in set(lost) and d.uuid)
        self._last_seen: dict[str, int] = {}
        self._no_utilization: set[str] = set()
        self.start_errors = tuple(errors)

    @property
    def devices(self) -> tuple[NvmlDevice, ...]:
        return self._devices

    def read(self, errors: list[str]) -> tuple[GpuProcesses, ...]:
        """This cycle's processes per device; failures' NVML code names go to `errors`."""
        out = []
        for device in self._devices:
            try:
                out.append(self._read_device(device, errors))
            except GpuLostError as exc:
                errors.append(str(exc))
        return tuple(out)

    def _read_device(self, device: NvmlDevice, errors: list[str]) -> GpuProcesses:
        try:
            running = pynvml.nvmlDeviceGetComputeRunningProcesses(device.handle)
        except pynvml.NVMLError as exc:
            note_error(errors, exc)
            running = []
        pids = tuple(sorted({int(p.pid) for p in running}))
        usage = None
        if not device.is_mig and not device.mig_mode and device.uuid not in self._no_utilization:
            usage = self._utilization(device, errors)
        return GpuProcesses(device.uuid, pids, usage)

    def _utilization(self, device: NvmlDevice, errors: list[str]) -> tuple[ProcessUse, ...] | None:
        since = self._last_seen.get(device.uuid, 0)
        try:
            samples: list[Any] = pynvml.nvmlDeviceGetProcessUtilization(device.handle, since)
        except pynvml.NVMLError as exc:
            if exc.value in _NO_SAMPLES:  # no sample newer than `since`: nobody ran
                return ()
            if exc.value in _ABSENT:
                self._no_utilization.add(device.uuid)
                return None
            if exc.value == pynvml.NVML_ERROR_GPU_IS_LOST:
                raise GpuLostError(error_name(exc.value)) from exc
            errors.append(error_name(exc.value))
            return None
        by_pid: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for sample in samples:
            by_pid[int(sample.pid)].append((int(sample.smUtil), int(sample.memUtil)))
            self._last_seen[device.uuid] = max(since, int(sample.timeStamp))
            since = self._last_seen[device.uuid]
        return tuple(
            ProcessUse(
                pid,
                sum(s for s, _ in levels) / len(levels) / 100.0,
                sum(m for _, m in levels) / len(levels) / 100.0,
            )
            for pid, levels in sorted(by_pid.items())
        )

    def close(self) -> None:
        """Shut NVML down (once)."""
        if not self._closed:
            self._closed = True
            shutdown_nvml()
