"""Fake NVML: per-process utilization (nvmlDeviceGetProcessUtilization, `nvidia-smi pmon`).

Each call answers one sample per compute process of the device, stamped with the fake clock
(microseconds), when that stamp is newer than the caller's `lastSeenTimeStamp`; with no newer
sample it answers NVML_ERROR_NOT_FOUND, as the driver does. Levels are whole percent: those
set with `FakeNvml.set_process_utilization`, else the workload's SM activity and DRAM activity
split evenly over the device's processes (`FakeState.processes_on`).
"""

from __future__ import annotations

from . import codes
from .registry import ApiFunction
from .state import FakeDevice, FakeState, as_int, deref

__all__ = ["FUNCTIONS", "process_levels"]


def process_levels(state: FakeState, device: FakeDevice) -> tuple[tuple[int, int, int], ...]:
    """(pid, SM %, memory %) of each compute process on `device` now."""
    if not device.is_mig and device.index in state.process_utilization:
        return state.process_utilization[device.index]
    processes = state.processes_on(device)
    if not processes:
        return ()
    rates = state.profile.workload.rates_at(device.index, state.workload_time())
    share = len(processes)
    sm = round(rates.sm_active * 100 / share)
    memory = round(rates.dram_active * 100 / share)
    return tuple((pid, sm, memory) for pid, _ in processes)


def _process_utilization(
    state: FakeState, device: FakeDevice, samples: object, count: object, last_seen: object
) -> int:
    """nvmlDeviceGetProcessUtilization: size query with NULL, then fill."""
    stamp = int(state.now() * 1e6)
    since = as_int(last_seen)
    levels = process_levels(state, device) if stamp > since else ()
    counter = deref(count)
    if not levels:
        counter.value = 0
        return codes.NOT_FOUND
    if samples is None or counter.value < len(levels):
        counter.value = len(levels)
        return codes.INSUFFICIENT_SIZE
    array = deref(samples)
    for i, (pid, sm, memory) in enumerate(levels):
        array[i].pid = pid
        array[i].timeStamp = stamp
        array[i].smUtil = sm
        array[i].memUtil = memory
        array[i].encUtil = 0
        array[i].decUtil = 0
    counter.value = len(levels)
    return codes.SUCCESS


FUNCTIONS = (
    # Not on MIG device handles: the driver has no per-process utilization inside MIG.
    ApiFunction("nvmlDeviceGetProcessUtilization", _process_utilization, device_arg=True),
)
