"""The NVML source: GPU device metrics through pynvml (the only pynvml importers are here,
in `nvml_*.py`, `gpm.py` and `xid.py`).

Per sample and GPU: one batched nvmlDeviceGetFieldValues call (power, energy, temperatures,
PCIe bytes and replays, throttle time, ECC, row remapping, NVLink per-link bytes, state and
errors summed into per-GPU totals; with `nvlink_per_link` also the per-link series, raw bytes
and speed; the link speed, a link-training property, is requested on the first sample, every
60th and the one after a link changed state, and repeated in between), memory v2, clocks,
clock event reasons, naive utilization, optionally per-process memory, GPM metrics (gpm.py;
per GPU instance for MIG devices, as the gpumetrics_mig_* families) and XID counts (xid.py).
Static facts (name, UUID, PCI bus, memory total, max clocks, driver and CUDA versions, MIG
mode, spec-table peaks) are read once.

A GPU that answers NVML_ERROR_GPU_IS_LOST keeps only `gpumetrics_gpu_up 0` from then on, and
every cycle reports "NVML_ERROR_GPU_IS_LOST" in Collection.errors; the other GPUs keep
flowing. Unsupported values are absent; other failures are named in Collection.errors.

    with FakeNvml("h200x8"):            # or a real driver
        source = NvmlSource()
        collection = source.collect(time.time())
        source.close()
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pynvml

from ..catalog import gpu as g
from ..errors import UnavailableError
from ..hardware import GpuSpec
from ..samples import Collection, Sample
from .gpm import GpmCollector
from .nvml_devices import CLOCK_DOMAINS, DriverInfo, NvmlDevice, discover, read_driver
from .nvml_fields import FieldBatch, read_field_values
from .nvml_lib import (
    UNAVAILABLE_HINT,
    GpuLostError,
    error_name,
    init_nvml,
    note_error,
    shutdown_nvml,
)
from .nvml_names import CLOCK_EVENT_REASON_READERS, CLOCK_EVENT_REASONS
from .xid import XidWatcher

__all__ = ["LOST", "NvmlSource"]

log = logging.getLogger(__name__)

#: The error code a lost GPU reports, every cycle.
LOST = "NVML_ERROR_GPU_IS_LOST"
_MHZ = 1e6
#: Memory v2 failures that mean "use v1" (older drivers, some boards).
_NO_MEMORY_V2 = frozenset(
    {
        pynvml.NVML_ERROR_NOT_SUPPORTED,
        pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
    }
)

_CLOCK_TYPES = tuple(clock_type for _, clock_type in CLOCK_DOMAINS)


@dataclass(slots=True)
class _Hot:
    """What a device's sampling cycle reuses, prepared at start: label tuples (validated
    against the catalog once, then shared by every cycle's Samples), the `up` samples, the
    field batch, and the last clock-event mask with its samples (rebuilt when it changes)."""

    labels: tuple[str, ...]
    gpm_labels: tuple[str, ...]
    up: Sample
    down: Sample
    batch: FieldBatch
    gpu_temperature: tuple[str, ...]
    clocks: tuple[tuple[str, ...], ...]
    throttle: tuple[tuple[tuple[str, ...], int], ...]
    mask: int | None = None
    mask_samples: tuple[Sample, ...] = field(default=())

    @classmethod
    def of(cls, device: NvmlDevice) -> _Hot:
        labels = device.labels
        return cls(
            labels=labels,
            gpm_labels=device.mig_labels if device.is_mig else labels,
            up=g.GPU_UP.sample(1.0, *labels),
            down=g.GPU_UP.sample(0.0, *labels),
            batch=FieldBatch(device.reads, labels),
            gpu_temperature=g.GPU_TEMPERATURE.sample(0.0, *labels, "gpu").labels,
            clocks=tuple(g.GPU_CLOCK.sample(0.0, *labels, c).labels for c, _ in CLOCK_DOMAINS),
            throttle=tuple(
                (g.GPU_THROTTLE_ACTIVE.sample(0.0, *labels, reason).labels, bit)
                for reason, bit in CLOCK_EVENT_REASONS
            ),
        )

    def throttle_samples(self, mask: int) -> tuple[Sample, ...]:
        """One 0/1 sample per clock event reason for `mask` (the same objects while the mask
        stays the same)."""
        if mask != self.mask:
            name = g.GPU_THROTTLE_ACTIVE.name
            self.mask_samples = tuple(
                Sample(name, labels, 1.0 if mask & bit else 0.0) for labels, bit in self.throttle
            )
            self.mask = mask
        return self.mask_samples


class NvmlSource:
    """GPU metrics from NVML (`nvidia-smi -q` and `nvidia-smi dmon` territory).

    `gpu_spec` overrides the spec-table peaks for every GPU; `processes` adds per-process
    memory (process names from `<proc_root>/<pid>/comm`); `gpm` and `xid` switch those parts
    on; `nvlink_per_link` adds the per-link NVLink series (the per-GPU NVLink totals are always
    there); `xid_timeout_ms` bounds how long `close()` waits for the XID thread. Raises
    UnavailableError (with a hint) when NVML cannot be initialised.
    """

    def __init__(
        self,
        *,
        gpu_spec: GpuSpec | None = None,
        processes: bool = False,
        proc_root: Path = Path("/proc"),
        gpm: bool = True,
        xid: bool = True,
        xid_timeout_ms: int = 500,
        nvlink_per_link: bool = False,
    ) -> None:
        init_nvml()
        self._closed = False
        self._processes = processes
        self._proc_root = proc_root
        self._errors_total: Counter[str] = Counter()
        self._pending: list[str] = []
        self._unsupported: set[tuple[str, str]] = set()
        self._gpm: GpmCollector | None = None
        self._xid: XidWatcher | None = None
        self._hot: dict[str, _Hot] = {}
        try:
            self._driver: DriverInfo = read_driver(self._pending)
            devices, lost = discover(
                self._driver, gpu_spec, self._pending, per_link=nvlink_per_link
            )
            self._devices = tuple(devices)
            self._lost = set(lost)
            self._hot = {device.key: _Hot.of(device) for device in self._devices}
            if gpm:
                self._gpm = GpmCollector()
                parents = {d.index: d for d in self._devices if not d.is_mig}
                for device in self._devices:
                    parent = parents.get(device.index)
                    if device.index in self._lost or parent is None or not parent.gpm:
                        continue
                    if not device.is_mig:
                        self._gpm.add(device.key, device.handle, self._pending)
                    elif device.gpu_instance_id is not None:  # sampled on its parent's handle
                        self._gpm.add(
                            device.key,
                            parent.handle,
                            self._pending,
                            gpu_instance=device.gpu_instance_id,
                        )
            if xid:
                self._xid = self._start_xid(xid_timeout_ms)
        except pynvml.NVMLError as exc:  # enumeration itself failed: nothing to sample
            self.close()
            raise UnavailableError(
                "NVML", f"listing GPUs failed with {error_name(exc.value)}", UNAVAILABLE_HINT
            ) from exc
        except BaseException:
            self.close()
            raise

    def _start_xid(self, timeout_ms: int) -> XidWatcher | None:
        watched = [
            (d.key, d.handle) for d in self._devices if not d.is_mig and d.index not in self._lost
        ]
        if not watched:
            return None
        try:
            watcher = XidWatcher(watched, timeout_ms=timeout_ms)
        except pynvml.NVMLError as exc:  # no event support at all: count no XIDs, say why
            if exc.value not in (pynvml.NVML_ERROR_NOT_SUPPORTED,):
                self._pending.append(error_name(exc.value))
            return None
        self._pending.extend(watcher.drain_errors())
        return watcher if watcher.watching else None

    @property
    def name(self) -> str:
        return "nvml"

    @property
    def devices(self) -> tuple[NvmlDevice, ...]:
        """The GPUs and MIG devices found at start, GPUs first then their MIG devices."""
        return self._devices

    @property
    def driver(self) -> DriverInfo:
        return self._driver

    @property
    def errors_total(self) -> Mapping[str, int]:
        """Failed NVML calls so far, by return-code name (NOT_SUPPORTED is never counted)."""
        return dict(self._errors_total)

    @property
    def xid_running(self) -> bool:
        """True while the XID watcher thread runs (some GPU accepted XID event registration)."""
        return self._xid is not None and self._xid.running

    @property
    def gpm_unsupported(self) -> tuple[str, ...]:
        """Device keys whose GPM sampling is not supported here (MIG instances whose
        nvmlGpmMigSampleGet says NOT_SUPPORTED, or a pynvml without it)."""
        return self._gpm.unsupported if self._gpm is not None else ()

    @property
    def gpm_enabled(self) -> bool:
        return self._gpm is not None and self._gpm.enabled and bool(self._gpm.keys())

    def collect(self, now: float) -> Collection:
        """One sampling cycle at Unix time `now` (GPM windows are measured with it)."""
        if self._closed:
            raise UnavailableError("NVML", "the source is closed", "create a new NvmlSource")
        samples: list[Sample] = []
        errors, self._pending = self._pending, []
        if self._xid is not None:
            errors.extend(self._xid.drain_errors())
        xids = self._xid.counts() if self._xid is not None else {}
        for device in self._devices:
            if device.index in self._lost:
                samples.append(self._hot[device.key].down)
                errors.extend([LOST] if not device.is_mig else [])
                continue
            device_errors: list[str] = []
            try:
                part = self._collect_device(device, now, device_errors)
            except GpuLostError:
                log.warning("GPU %s (%s) is lost: NVML_ERROR_GPU_IS_LOST", device.key, device.uuid)
                self._lost.add(device.index)
                if self._gpm is not None:
                    self._gpm.drop(device.key)
                samples.append(self._hot[device.key].down)
                errors.append(LOST)
                continue
            samples.extend(part)
            if xids:
                samples.extend(
                    g.GPU_XID_ERRORS.sample(float(count), *device.labels, str(xid))
                    for (key, xid), count in sorted(xids.items())
                    if key == device.key
                )
            if device_errors:
                errors.extend(device_errors)
        self._errors_total.update(errors)
        return Collection(tuple(samples), tuple(errors))

    def _call(self, device: NvmlDevice, errors: list[str], function: Any, *args: Any) -> Any:
        """nvml_call, remembering per device which functions are NOT_SUPPORTED there."""
        key = (device.key, function.__name__)
        if key in self._unsupported:
            return None
        try:
            return function(device.handle, *args)
        except pynvml.NVMLError as exc:
            if exc.value in (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND):
                self._unsupported.add(key)
                return None
            note_error(errors, exc)
            return None

    def _collect_device(self, device: NvmlDevice, now: float, errors: list[str]) -> list[Sample]:
        hot = self._hot[device.key]
        labels = hot.labels
        out = [*device.static, hot.up]
        out.extend(self._memory(device, errors))
        utilization = self._call(device, errors, pynvml.nvmlDeviceGetUtilizationRates)
        if utilization is not None:  # naive: "a kernel ran", not how busy the GPU was
            out.append(Sample(g.GPU_UTILIZATION_NAIVE.name, labels, utilization.gpu / 100.0))
            out.append(
                Sample(g.GPU_MEMORY_UTILIZATION_NAIVE.name, labels, utilization.memory / 100.0)
            )
        if not device.is_mig:
            out.extend(self._fields(device, errors))
            out.extend(self._clocks(device, errors))
        if self._gpm is not None:  # a MIG device: its GPU instance's activity
            out.extend(self._gpm.collect(device.key, hot.gpm_labels, now, errors))
        if self._processes and not device.mig_mode:
            out.extend(self._process_memory(device, errors))
        return out

    def _memory(self, device: NvmlDevice, errors: list[str]) -> list[Sample]:
        """Used and reserved framebuffer bytes (nvidia-smi --query-gpu=memory.used,
        memory.reserved); v1 (used includes the reserved part) where v2 is missing."""
        labels = self._hot[device.key].labels
        try:
            memory = pynvml.nvmlDeviceGetMemoryInfo(device.handle, version=pynvml.nvmlMemory_v2)
        except pynvml.NVMLError as exc:
            if exc.value not in _NO_MEMORY_V2:
                note_error(errors, exc)
                return []
            memory = self._call(device, errors, pynvml.nvmlDeviceGetMemoryInfo)
            if memory is None:
                return []
            return [Sample(g.GPU_MEMORY_USED.name, labels, float(memory.used))]
        return [
            Sample(g.GPU_MEMORY_USED.name, labels, float(memory.used)),
            Sample(g.GPU_MEMORY_RESERVED.name, labels, float(memory.reserved)),
        ]

    def _fields(self, device: NvmlDevice, errors: list[str]) -> list[Sample]:
        """The one batched field read; each field's own nvmlReturn decides its sample.

        nvidia-smi equivalents: `--query-gpu=power.draw.instant,power.limit,temperature.memory,
        ecc.errors.corrected.volatile.total,...`, `nvidia-smi -q -d ROW_REMAPPER` and
        `nvidia-smi nvlink -gt d` (per-link data counters, KiB).
        """
        hot = self._hot[device.key]
        out: list[Sample] = []
        values = self._call(device, errors, read_field_values, hot.batch)
        failed: set[str] = set()
        gpu_temperature = values is not None and hot.batch.decode(values, out, failed)
        errors.extend(sorted(failed))
        if not gpu_temperature:
            celsius = self._call(
                device, errors, pynvml.nvmlDeviceGetTemperature, pynvml.NVML_TEMPERATURE_GPU
            )
            if celsius is not None:
                out.append(Sample(g.GPU_TEMPERATURE.name, hot.gpu_temperature, float(celsius)))
        return out

    def _clocks(self, device: NvmlDevice, errors: list[str]) -> list[Sample]:
        """Current clocks in Hz and one 0/1 series per clock event (throttle) reason."""
        hot = self._hot[device.key]
        out = []
        for labels, clock_type in zip(hot.clocks, _CLOCK_TYPES, strict=True):
            mhz = self._call(device, errors, pynvml.nvmlDeviceGetClockInfo, clock_type)
            if mhz is not None:
                out.append(Sample(g.GPU_CLOCK.name, labels, float(mhz) * _MHZ))
        mask = None
        for reader in CLOCK_EVENT_REASON_READERS:  # the next only where the driver lacks one
            mask = self._call(device, errors, reader)
            if mask is not None or (device.key, reader.__name__) not in self._unsupported:
                break
        if mask is not None:
            out.extend(hot.throttle_samples(mask))
        return out

    def _process_memory(self, device: NvmlDevice, errors: list[str]) -> list[Sample]:
        """Per-process GPU memory (nvidia-smi --query-compute-apps=pid,used_memory)."""
        processes = self._call(device, errors, pynvml.nvmlDeviceGetComputeRunningProcesses)
        out = []
        for process in processes or ():
            used = process.usedGpuMemory
            if used is None:  # not available (WDDM)
                continue
            pid = int(process.pid)
            out.append(
                g.GPU_PROCESS_MEMORY.sample(float(used), *device.labels, str(pid), self._comm(pid))
            )
        return out

    def _comm(self, pid: int) -> str:
        try:
            return (self._proc_root / str(pid) / "comm").read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def close(self) -> None:
        """Stop the XID thread, free GPM buffers, shut NVML down. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._xid is not None:
            self._xid.close()
        if self._gpm is not None:
            self._gpm.close()
        shutdown_nvml()
