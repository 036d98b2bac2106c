"""XID critical errors, counted on a dedicated thread from an NVML event set.

The driver reports XIDs (`dmesg | grep "NVRM: Xid"`) as nvmlEventTypeXidCriticalError events.
A daemon thread blocks in nvmlEventSetWait_v2 with a timeout (so it notices `close()`), and
counts each event per (gpu label, XID code) in a lock-guarded dict the source reads at
collect() time (gpumetrics_gpu_xid_errors_total). NVML_ERROR_TIMEOUT from the wait is the
normal "nothing happened" and is not an error; other failures are kept for the source to
report.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Sequence
from typing import Any

import pynvml

from .nvml_lib import ABSENT_CODES, error_name

__all__ = ["XidWatcher"]

log = logging.getLogger(__name__)


def _address(handle: Any) -> int | None:
    """The opaque address inside an NVML handle (to match event devices to GPUs)."""
    if handle is None:
        return None
    value = ctypes.cast(handle, ctypes.c_void_p).value
    return int(value) if value is not None else None


class XidWatcher:
    """Counts XID events for `devices` ((gpu label, nvmlDevice_t) pairs) until `close()`.

    Registration happens in the constructor, so an XID raised after it returns is counted.
    GPUs that cannot register (NOT_SUPPORTED, e.g. MIG devices) are skipped; with none left
    no thread starts.
    """

    def __init__(self, devices: Sequence[tuple[str, Any]], *, timeout_ms: int = 500) -> None:
        if timeout_ms <= 0:
            raise ValueError("timeout_ms must be > 0")
        self._timeout_ms = timeout_ms
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}
        self._errors: list[str] = []
        self._stop = threading.Event()
        self._keys: dict[int, str] = {}
        self._event_set: Any = pynvml.nvmlEventSetCreate()
        for key, handle in devices:
            try:
                pynvml.nvmlDeviceRegisterEvents(
                    handle, pynvml.nvmlEventTypeXidCriticalError, self._event_set
                )
            except pynvml.NVMLError as exc:
                if exc.value not in ABSENT_CODES:
                    self._errors.append(error_name(exc.value))
                continue
            address = _address(handle)
            if address is not None:
                self._keys[address] = key
        self._thread: threading.Thread | None = None
        if self._keys:
            self._thread = threading.Thread(target=self._run, name="gpumetrics-xid", daemon=True)
            self._thread.start()
        else:
            self._free()

    @property
    def watching(self) -> tuple[str, ...]:
        """GPU labels registered for XID events."""
        return tuple(self._keys.values())

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def counts(self) -> dict[tuple[str, int], int]:
        """(gpu label, XID) -> events seen so far (a copy)."""
        with self._lock:
            return dict(self._counts)

    def drain_errors(self) -> list[str]:
        """Error codes seen by the watcher since the last call."""
        with self._lock:
            errors, self._errors = self._errors, []
        return errors

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = pynvml.nvmlEventSetWait_v2(self._event_set, self._timeout_ms)
            except pynvml.NVMLError as exc:
                if exc.value == pynvml.NVML_ERROR_TIMEOUT:
                    continue
                with self._lock:
                    self._errors.append(error_name(exc.value))
                self._stop.wait(self._timeout_ms / 1000.0)  # do not spin on a broken set
                continue
            if not data.eventType & pynvml.nvmlEventTypeXidCriticalError:
                continue
            address = _address(data.device)
            key = self._keys.get(address) if address is not None else None
            if key is None:
                continue
            with self._lock:
                xid = (key, int(data.eventData))
                self._counts[xid] = self._counts.get(xid, 0) + 1

    def close(self) -> None:
        """Stop the thread (within about one wait timeout) and free the event set."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2 * self._timeout_ms / 1000.0 + 1.0)
            if thread.is_alive():
                log.warning("XID watcher thread did not stop; leaving its event set allocated")
                return
        self._free()

    def _free(self) -> None:
        event_set, self._event_set = self._event_set, None
        if event_set is None:
            return
        try:
            pynvml.nvmlEventSetFree(event_set)
        except pynvml.NVMLError as exc:
            log.debug("nvmlEventSetFree failed: %s", error_name(exc.value))
