"""FakeNvml: a pure-Python libnvidia-ml behind pynvml's real wrappers.

pynvml loads the driver library into the module global `pynvml.nvmlLib` only when it is
empty, and looks every C function up there by name (`getattr(nvmlLib, "nvmlDeviceGetName")`),
caching what it finds in `pynvml._nvmlGetFunctionPointer_cache`. `install()` puts a fake
library object there (and clears the cache; `uninstall()` restores both), so pynvml's real
wrappers, ctypes structs and NVMLError classes run against fake devices:

    with FakeNvml("h200x8", clock=ManualClock(0.0)) as fake:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        pynvml.nvmlDeviceGetFieldValues(handle, [(pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, 3)])

A missing library (`library_missing=True`) is modelled without a fake: `install()` leaves
`nvmlLib` empty and swaps pynvml's `CDLL` for one that fails to load, so `nvmlInit()` goes
through pynvml's own loading path and raises `NVMLError_LibraryNotFound`, even on a machine
that has a driver.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import NoReturn, Self

import pynvml

from . import api_device, api_events, api_gpm, api_mig, api_processes, api_system, codes
from .profiles import FakeProfile, parse_fake_gpus
from .registry import ApiFunction
from .state import FakeDevice, FakeState
from .workload import Workload

__all__ = ["FakeNvml"]

_FUNCTIONS: Mapping[str, ApiFunction] = {
    function.name: function
    for function in (
        *api_system.FUNCTIONS,
        *api_device.FUNCTIONS,
        *api_gpm.FUNCTIONS,
        *api_events.FUNCTIONS,
        *api_processes.FUNCTIONS,
        *api_mig.FUNCTIONS,
    )
}


@dataclass(frozen=True, slots=True)
class _Saved:
    """pynvml's globals as they were before install()."""

    library: object
    cache: dict[str, object]
    refcount: int
    cdll: object


def _missing_cdll(name: str, *args: object, **kwargs: object) -> NoReturn:
    raise OSError(f"{name}: cannot open shared object file: No such file or directory")


class _FakeLibrary:
    """The object in `pynvml.nvmlLib`: NVML C functions as attributes, by symbol name."""

    __slots__ = ("_entries", "_fake")

    def __init__(self, fake: FakeNvml) -> None:
        self._fake = fake
        self._entries: dict[str, Callable[..., object]] = {}

    def __getattr__(self, name: str) -> Callable[..., object]:
        function = _FUNCTIONS.get(name)
        if function is None:  # pynvml turns this into NVMLError_FunctionNotFound
            raise AttributeError(name)
        entry = self._entries.get(name)
        if entry is None:
            fake = self._fake

            def entry(*args: object) -> object:
                return fake._dispatch(function, args)

            entry.__name__ = name
            self._entries[name] = entry
        return entry


class FakeNvml:
    """A fake NVML driven by a device profile and a workload script on an injectable clock.

    `profile` is a FakeProfile or a `--fake-gpus` spec (`"h200x8"`, `"a100"`, `"mig"`,
    `"minimal"`). `clock` returns seconds (default `time.time`); the workload's time 0 is
    `epoch` (default: the clock's reading now). Fault injection methods may be called at any
    time, installed or not.
    """

    def __init__(
        self,
        profile: FakeProfile | str = "h100x8",
        *,
        clock: Callable[[], float] = time.time,
        epoch: float | None = None,
        workload: Workload | None = None,
        library_missing: bool = False,
    ) -> None:
        resolved = parse_fake_gpus(profile) if isinstance(profile, str) else profile
        if workload is not None:
            resolved = replace(resolved, workload=workload)
        self._state = FakeState(resolved, clock, clock() if epoch is None else epoch)
        self._library = _FakeLibrary(self)
        self._saved: _Saved | None = None
        self.library_missing = library_missing

    # --- installing -----------------------------------------------------------------------

    @property
    def installed(self) -> bool:
        return self._saved is not None

    def install(self) -> Self:
        """Point pynvml at this fake (clearing its function cache); returns self."""
        with pynvml.libLoadLock:
            if self._saved is not None:
                raise RuntimeError("this FakeNvml is already installed")
            self._saved = _Saved(
                pynvml.nvmlLib,
                dict(pynvml._nvmlGetFunctionPointer_cache),
                pynvml._nvmlLib_refcount,
                pynvml.CDLL,
            )
            pynvml._nvmlGetFunctionPointer_cache.clear()
            if self.library_missing:
                pynvml.nvmlLib = None
                pynvml.CDLL = _missing_cdll
            else:
                pynvml.nvmlLib = self._library
        return self

    def uninstall(self) -> None:
        """Give pynvml back its library, function cache, refcount and CDLL. Idempotent."""
        with pynvml.libLoadLock:
            saved, self._saved = self._saved, None
            if saved is None:
                return
            pynvml.nvmlLib = saved.library
            pynvml._nvmlGetFunctionPointer_cache.clear()
            pynvml._nvmlGetFunctionPointer_cache.update(saved.cache)
            pynvml._nvmlLib_refcount = saved.refcount
            pynvml.CDLL = saved.cdll

    def __enter__(self) -> Self:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.uninstall()

    # --- introspection --------------------------------------------------------------------

    @property
    def profile(self) -> FakeProfile:
        return self._state.profile

    @property
    def devices(self) -> tuple[FakeDevice, ...]:
        """The physical GPUs, in NVML index order."""
        return self._state.devices

    def mig_devices(self, gpu: int) -> tuple[FakeDevice, ...]:
        """The MIG devices of GPU `gpu` (empty when MIG is off)."""
        return self._state.mig_devices[gpu]

    @property
    def epoch(self) -> float:
        """Clock time at which the workload script starts (its t = 0)."""
        return self._state.epoch

    @property
    def initialized(self) -> bool:
        """True between nvmlInit and the matching nvmlShutdown."""
        return self._state.init_count > 0

    def calls(self) -> dict[str, int]:
        """How many times each NVML function was called (benchmarks, batching tests)."""
        with self._state.lock:
            return dict(self._state.calls)

    # --- faults ---------------------------------------------------------------------------

    def lose_gpu(self, gpu: int) -> None:
        """GPU `gpu` falls off the bus: every later call on it (and its MIG devices) returns
        NVML_ERROR_GPU_IS_LOST, as do nvmlDeviceGetHandleByIndex and GPM metrics for it."""
        with self._state.lock:
            self._state.lost.add(gpu)

    def gpm_no_permission(self) -> None:
        """nvmlGpmSampleGet returns NVML_ERROR_NO_PERMISSION (a locked-down container)."""
        self.fail("nvmlGpmSampleGet", codes.NO_PERMISSION)

    def fail(self, function: str, code: int, *, gpu: int | None = None) -> None:
        """Make `function` return `code` (e.g. NVML_ERROR_TIMEOUT) everywhere, or only on
        GPU `gpu` for functions that take a device handle."""
        if function not in _FUNCTIONS:
            raise KeyError(f"FakeNvml does not implement {function}")
        with self._state.lock:
            self._state.failures.setdefault(function, {})[gpu] = code

    def clear_failures(self) -> None:
        """Undo `fail` and `gpm_no_permission` (not lost GPUs: they stay lost)."""
        with self._state.lock:
            self._state.failures.clear()

    def not_supported(self, field_id: int, *, gpu: int | None = None) -> None:
        """Field `field_id` reads NVML_ERROR_NOT_SUPPORTED per field (on `gpu` or all)."""
        with self._state.lock:
            self._state.unsupported_fields.add((gpu, field_id))

    def gpm_not_supported(self, metric_id: int) -> None:
        """GPM metric `metric_id` reads NVML_ERROR_NOT_SUPPORTED in nvmlGpmMetricsGet."""
        with self._state.lock:
            self._state.unsupported_gpm_metrics.add(metric_id)

    def slow_calls(self, seconds: float) -> None:
        """Every NVML call sleeps `seconds` (real time) first; 0 turns it off."""
        if seconds < 0:
            raise ValueError("a delay cannot be negative")
        self._state.delay_seconds = seconds

    def set_field(self, gpu: int, field_id: int, value: float, *, scope: int | None = None) -> None:
        """Pin field `field_id` (link `scope` for per-link fields) of GPU `gpu` to `value`,
        in NVML's unit (e.g. remapped rows, ECC counts, a counter jump to test resets)."""
        with self._state.lock:
            self._state.field_overrides[(gpu, field_id, scope)] = value

    def set_processes(self, gpu: int, processes: Iterable[tuple[int, int]]) -> None:
        """Compute processes on GPU `gpu` as (pid, used bytes); empty for none."""
        with self._state.lock:
            self._state.processes[gpu] = tuple(processes)

    def set_process_utilization(self, gpu: int, levels: Iterable[tuple[int, int, int]]) -> None:
        """Per-process utilization on GPU `gpu` as (pid, SM %, memory %), whole percent, as
        nvmlDeviceGetProcessUtilization reports it; empty for none."""
        with self._state.lock:
            self._state.process_utilization[gpu] = tuple(levels)

    def inject_xid(self, gpu: int, xid: int) -> int:
        """Raise XID `xid` on GPU `gpu`: queue an nvmlEventTypeXidCriticalError event on
        every event set registered for it. Returns how many sets received it."""
        with self._state.lock:
            device = self._state.devices[gpu]
            return sum(
                api_events.deliver(event_set, device, pynvml.nvmlEventTypeXidCriticalError, xid)
                for event_set in list(self._state.event_sets.values())
            )

    # --- the C side -----------------------------------------------------------------------

    def _dispatch(self, function: ApiFunction, args: tuple[object, ...]) -> object:
        """Run one fake C call: delay, count, injected failure, init, handle checks."""
        state = self._state
        if state.delay_seconds > 0:
            time.sleep(state.delay_seconds)
        with state.lock:
            state.calls[function.name] += 1
            device = state.device(args[0]) if function.device_arg and args else None
            failure = state.failure_for(function.name, device)
            if failure is not None:
                return failure
            if function.needs_init and state.init_count == 0:
                return codes.UNINITIALIZED
            if function.device_arg:
                if device is None:
                    return codes.INVALID_ARGUMENT
                if device.index in state.lost:
                    return codes.GPU_IS_LOST
                if device.is_mig and not function.mig_ok:
                    return codes.NOT_SUPPORTED
                if not device.is_mig and function.name in device.spec.unsupported_functions:
                    return codes.NOT_SUPPORTED
                call_args: tuple[object, ...] = (device, *args[1:])
            else:
                call_args = args
            if not function.blocking:
                return function.impl(state, *call_args)
        return function.impl(state, *call_args)
