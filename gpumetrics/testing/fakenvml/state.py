"""The fake machine's state: devices, opaque handles, GPM sample buffers, event sets, faults.

NVML hands out opaque pointers (`nvmlDevice_t`, `nvmlGpmSample_t`, `nvmlEventSet_t`). The
fake writes made-up, never-dereferenced addresses into the ctypes pointers pynvml passes
(`byref(handle)`) and maps an address back to its object when a handle comes in.
"""

from __future__ import annotations

import ctypes
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .profiles import DeviceSpec, FakeProfile, MigSpec

__all__ = [
    "EventSet",
    "FakeDevice",
    "FakeState",
    "GpmBuffer",
    "address_of",
    "as_int",
    "deref",
    "write_address",
]

#: The bus numbers of the eight GPUs of an HGX H100 board, in NVML index order.
_HGX_BUSES = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)
_UUID_NAMESPACE = uuid.UUID("6f1c2a4e-8d3b-4f5a-9c7e-2b1d0e3f4a5b")


def deref(ref: object) -> Any:
    """The ctypes object behind `byref(obj)` (or the object itself when passed directly)."""
    return getattr(ref, "_obj", ref)


def as_int(value: object) -> int:
    """An int from a ctypes scalar (`c_uint(3)`) or a Python int."""
    if isinstance(value, int):
        return value
    raw = getattr(value, "value", None)
    if not isinstance(raw, int):
        raise TypeError(f"expected an integer argument, got {value!r}")
    return raw


def address_of(pointer: object) -> int | None:
    """The address an opaque ctypes pointer holds (None for NULL or a non-pointer)."""
    if isinstance(pointer, int):
        return pointer
    if isinstance(pointer, ctypes._Pointer | ctypes.c_void_p):
        return ctypes.cast(pointer, ctypes.c_void_p).value
    return None


def write_address(out: object, address: int) -> None:
    """Store `address` in the ctypes pointer behind `out` (an out-parameter)."""
    ctypes.c_void_p.from_buffer(deref(out)).value = address


@dataclass(frozen=True, slots=True)
class FakeDevice:
    """A GPU (`mig_index` None) or one MIG device of GPU `index`."""

    index: int
    spec: DeviceSpec
    uuid: str
    pci_bus: int
    address: int
    mig_index: int | None = None
    mig: MigSpec | None = None

    @property
    def is_mig(self) -> bool:
        return self.mig_index is not None

    @property
    def name(self) -> str:
        """The name NVML reports; MIG devices append `MIG <profile>`."""
        return f"{self.spec.name} MIG {self.mig.profile}" if self.mig else self.spec.name

    @property
    def memory_bytes(self) -> int:
        return self.mig.memory_bytes if self.mig else self.spec.memory_bytes

    @property
    def reserved_bytes(self) -> int:
        return self.mig.reserved_bytes if self.mig else self.spec.reserved_bytes


@dataclass(slots=True)
class GpmBuffer:
    """An nvmlGpmSample_t: empty until nvmlGpmSampleGet stamps it with a device and time."""

    address: int
    device: FakeDevice | None = None
    taken_at: float | None = None


@dataclass(slots=True)
class EventSet:
    """An nvmlEventSet_t: registered (device address -> event mask) and a queue of events."""

    address: int
    registered: dict[int, int] = field(default_factory=dict)
    queue: deque[tuple[int, int, int]] = field(default_factory=deque)
    ready: threading.Condition = field(default_factory=threading.Condition)
    freed: bool = False


class FakeState:
    """Everything the fake NVML functions read and change. Guard changes with `lock`."""

    def __init__(self, profile: FakeProfile, clock: Callable[[], float], epoch: float) -> None:
        self.profile = profile
        self.clock = clock
        self.epoch = epoch
        self.lock = threading.RLock()
        self.init_count = 0
        self.calls: Counter[str] = Counter()
        self.delay_seconds = 0.0
        self.lost: set[int] = set()
        #: function name -> {gpu index or None for all: NVML return code}
        self.failures: dict[str, dict[int | None, int]] = {}
        #: (gpu index or None, field id) answering NOT_SUPPORTED
        self.unsupported_fields: set[tuple[int | None, int]] = set()
        #: (gpu, field id, scope or None) -> fixed value
        self.field_overrides: dict[tuple[int, int, int | None], float] = {}
        self.unsupported_gpm_metrics: set[int] = set()
        self.processes: dict[int, tuple[tuple[int, int], ...]] = {}
        #: gpu index -> (pid, SM %, memory %) for nvmlDeviceGetProcessUtilization
        self.process_utilization: dict[int, tuple[tuple[int, int, int], ...]] = {}
        self.gpm_buffers: dict[int, GpmBuffer] = {}
        self.event_sets: dict[int, EventSet] = {}
        self._next_address = 0x7F3A_0000_1000
        self.devices: tuple[FakeDevice, ...] = ()
        self.mig_devices: dict[int, tuple[FakeDevice, ...]] = {}
        self.by_address: dict[int, FakeDevice] = {}
        self._build_devices()
        #: nvmlGpuInstance_t address -> the MIG device of that GPU instance
        self.gpu_instances: dict[int, FakeDevice] = {
            self._allocate(): child for children in self.mig_devices.values() for child in children
        }

    def _allocate(self) -> int:
        address = self._next_address
        self._next_address += 0x100
        return address

    def _uuid(self, prefix: str, key: str) -> str:
        return f"{prefix}-{uuid.uuid5(_UUID_NAMESPACE, f'{self.profile.name}/{key}')}"

    def _build_devices(self) -> None:
        devices: list[FakeDevice] = []
        for index, spec in enumerate(self.profile.devices):
            bus = _HGX_BUSES[index] if index < len(_HGX_BUSES) else 0x100 - len(devices) - 1
            device = FakeDevice(index, spec, self._uuid("GPU", str(index)), bus, self._allocate())
            devices.append(device)
            self.by_address[device.address] = device
            children = tuple(
                FakeDevice(
                    index,
                    spec,
                    self._uuid("MIG", f"{index}/{mig_index}"),
                    bus,
                    self._allocate(),
                    mig_index,
                    mig,
                )
                for mig_index, mig in enumerate(spec.mig)
            )
            self.mig_devices[index] = children
            self.by_address.update((child.address, child) for child in children)
        self.devices = tuple(devices)

    # --- time ---------------------------------------------------------------------------

    def now(self) -> float:
        """The injected clock's time (seconds)."""
        return self.clock()

    def workload_time(self, now: float | None = None) -> float:
        """Seconds since the fake's epoch: the workload's time axis."""
        return (self.clock() if now is None else now) - self.epoch

    # --- handles --------------------------------------------------------------------------

    def device(self, handle: object) -> FakeDevice | None:
        """The device an nvmlDevice_t handle points to, or None for an unknown handle."""
        address = address_of(handle)
        return self.by_address.get(address) if address is not None else None

    def gpu_instance_id(self, device: FakeDevice) -> int:
        """The GPU instance id of MIG device `device` (its MigSpec's, else position + 1)."""
        if device.mig is None or device.mig_index is None:
            raise ValueError(f"GPU {device.index} is not a MIG device")
        gi = device.mig.gpu_instance_id
        return device.mig_index + 1 if gi is None else gi

    def mig_by_instance(self, gpu: FakeDevice, gpu_instance_id: int) -> FakeDevice | None:
        """The MIG device of GPU `gpu` whose GPU instance id is `gpu_instance_id`."""
        for child in self.mig_devices.get(gpu.index, ()):
            if self.gpu_instance_id(child) == gpu_instance_id:
                return child
        return None

    def new_gpm_buffer(self) -> GpmBuffer:
        buffer = GpmBuffer(self._allocate())
        self.gpm_buffers[buffer.address] = buffer
        return buffer

    def new_event_set(self) -> EventSet:
        event_set = EventSet(self._allocate())
        self.event_sets[event_set.address] = event_set
        return event_set

    # --- faults ---------------------------------------------------------------------------

    def failure_for(self, function: str, device: FakeDevice | None) -> int | None:
        """The return code injected for `function` on `device` (or everywhere), if any."""
        by_gpu = self.failures.get(function)
        if not by_gpu:
            return None
        if device is not None and device.index in by_gpu:
            return by_gpu[device.index]
        return by_gpu.get(None)

    def field_supported(self, device: FakeDevice, field_id: int) -> bool:
        """Whether `device` answers `field_id` at all (profile and injected NOT_SUPPORTED)."""
        if device.is_mig:
            return False
        allowed = device.spec.supported_fields
        if allowed is not None and field_id not in allowed:
            return False
        injected = self.unsupported_fields
        return (None, field_id) not in injected and (device.index, field_id) not in injected

    def processes_on(self, device: FakeDevice) -> tuple[tuple[int, int], ...]:
        """(pid, used bytes) of compute processes on `device`.

        By default each GPU (or each MIG device) runs one engine process holding the memory
        the workload says is used (none while that is 0); a MIG-enabled GPU lists its MIG
        devices' processes. `set_processes` replaces a GPU's list.
        """
        if not device.is_mig and device.index in self.processes:
            return self.processes[device.index]
        if not device.is_mig and device.spec.mig:
            return tuple(
                p for child in self.mig_devices[device.index] for p in self.processes_on(child)
            )
        rates = self.profile.workload.rates_at(device.index, self.workload_time())
        usable = device.memory_bytes - device.reserved_bytes
        used = int(rates.memory_used_ratio * usable)
        slot = device.mig_index + 1 if device.mig_index is not None else 0
        return ((40000 + device.index * 100 + slot, used),) if used > 0 else ()
