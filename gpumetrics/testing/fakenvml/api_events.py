"""Fake NVML: event sets (XID critical errors and friends).

nvmlEventSetWait_v2 blocks on a condition for up to its real-time timeout (it is the one
call that does not follow the injected clock: a watcher thread must be able to stop) and
returns NVML_ERROR_TIMEOUT when nothing arrived. `FakeNvml.inject_xid` queues an event on
every set registered for that GPU's XID events.
"""

from __future__ import annotations

import ctypes

import pynvml

from . import codes
from .registry import ApiFunction
from .state import EventSet, FakeDevice, FakeState, address_of, as_int, deref, write_address

__all__ = ["FUNCTIONS", "SUPPORTED_EVENTS", "deliver"]

_NO_INSTANCE = 0xFFFFFFFF

#: Event types a fake GPU can register for.
SUPPORTED_EVENTS = (
    pynvml.nvmlEventTypeSingleBitEccError
    | pynvml.nvmlEventTypeDoubleBitEccError
    | pynvml.nvmlEventTypePState
    | pynvml.nvmlEventTypeXidCriticalError
    | pynvml.nvmlEventTypeClock
)


def deliver(event_set: EventSet, device: FakeDevice, event_type: int, data: int) -> bool:
    """Queue one event if `event_set` listens for it on `device`; True when queued."""
    if event_set.freed or not event_set.registered.get(device.address, 0) & event_type:
        return False
    with event_set.ready:
        event_set.queue.append((device.address, event_type, data))
        event_set.ready.notify_all()
    return True


def _event_set(state: FakeState, handle: object) -> EventSet | None:
    address = address_of(handle)
    return state.event_sets.get(address) if address is not None else None


def _create(state: FakeState, out: object) -> int:
    write_address(out, state.new_event_set().address)
    return codes.SUCCESS


def _register(state: FakeState, device: FakeDevice, types: object, handle: object) -> int:
    event_set = _event_set(state, handle)
    mask = as_int(types)
    if event_set is None:
        return codes.INVALID_ARGUMENT
    if mask & ~SUPPORTED_EVENTS:
        return codes.NOT_SUPPORTED
    event_set.registered[device.address] = event_set.registered.get(device.address, 0) | mask
    return codes.SUCCESS


def _supported(state: FakeState, device: FakeDevice, out: object) -> int:
    deref(out).value = SUPPORTED_EVENTS
    return codes.SUCCESS


def _wait(state: FakeState, handle: object, out: object, timeout_ms: object) -> int:
    event_set = _event_set(state, handle)
    if event_set is None:
        return codes.INVALID_ARGUMENT
    with event_set.ready:
        event_set.ready.wait_for(
            lambda: bool(event_set.queue) or event_set.freed, as_int(timeout_ms) / 1000.0
        )
        if event_set.freed:
            return codes.INVALID_ARGUMENT
        if not event_set.queue:
            return codes.TIMEOUT
        device_address, event_type, event_data = event_set.queue.popleft()
    data = deref(out)
    ctypes.c_void_p.from_buffer(data, type(data).device.offset).value = device_address
    data.eventType = event_type
    data.eventData = event_data
    data.gpuInstanceId = _NO_INSTANCE
    data.computeInstanceId = _NO_INSTANCE
    return codes.SUCCESS


def _free(state: FakeState, handle: object) -> int:
    address = address_of(handle)
    event_set = state.event_sets.pop(address, None) if address is not None else None
    if event_set is None:
        return codes.INVALID_ARGUMENT
    with event_set.ready:
        event_set.freed = True
        event_set.ready.notify_all()
    return codes.SUCCESS


FUNCTIONS = (
    ApiFunction("nvmlEventSetCreate", _create),
    ApiFunction("nvmlDeviceRegisterEvents", _register, device_arg=True),
    ApiFunction("nvmlDeviceGetSupportedEventTypes", _supported, device_arg=True),
    ApiFunction("nvmlEventSetWait_v2", _wait, blocking=True),
    ApiFunction("nvmlEventSetFree", _free),
)
