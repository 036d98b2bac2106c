"""Measured GPU activity over a window, from the NVML source (NVML + GPM).

`NvmlSampler` wraps one source (`gpumetrics.sources.nvml.NvmlSource`, or FakeNvml behind it in
tests) for a whole profile; each cell (or the attach window) gets a `window()`: `begin()` takes
a sample, which starts a GPM interval, and `end()` takes another, so the GPM ratios —
tensor active, DRAM active, SM active (`dcgmi dmon -e 1004,1005,1002`) — cover exactly the
timed steps. NVML needs >= 0.1 s between GPM samples: a window asks the runner for at least
`min_seconds` of timed steps, and `begin()` waits out what is left of 0.1 s after the previous
window's end. Naive utilization (`nvidia-smi --query-gpu=utilization.gpu`) is the driver's own
running average at `end()`. Values the GPU does not report stay None: nothing is invented.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from ..catalog import gpu as g
from ..samples import Collection
from ..sources import Source
from .measure import GpuActivity

__all__ = ["GPM_MIN_SECONDS", "NvmlSampler", "NvmlWindow", "activity_from"]

#: NVML's minimum time between two GPM samples (s), with a margin.
GPM_MIN_SECONDS: Final = 0.12
_METRICS: Final = {
    g.GPM_TENSOR_ACTIVE.name: "tensor_active",
    g.GPM_DRAM_ACTIVE.name: "dram_active",
    g.GPM_SM_ACTIVE.name: "sm_active",
    g.GPU_UTILIZATION_NAIVE.name: "utilization_naive",
}


def activity_from(
    collection: Collection, seconds: float, *, gpus: tuple[str, ...] = (), uuid: str | None = None
) -> GpuActivity | None:
    """Mean activity of the GPUs picked by `gpus` (NVML indexes) or `uuid` (all GPUs when
    neither is given) in one collection; None when it holds none of the four metrics."""
    values: dict[str, list[float]] = {}
    for sample in collection.samples:
        field = _METRICS.get(sample.metric)
        if field is None or not isinstance(sample.value, int | float):
            continue
        index, gpu_uuid = sample.labels[0], sample.labels[1]
        if uuid is not None and gpu_uuid != uuid:
            continue
        if uuid is None and gpus and index not in gpus:
            continue
        values.setdefault(field, []).append(float(sample.value))
    if not values:
        return None

    def mean(field: str) -> float | None:
        got = values.get(field)
        return sum(got) / len(got) if got else None

    return GpuActivity(
        tensor_active=mean("tensor_active"),
        dram_active=mean("dram_active"),
        sm_active=mean("sm_active"),
        utilization_naive=mean("utilization_naive"),
        seconds=seconds,
    )


class NvmlSampler:
    """One NVML source shared by every window of a profile. `clock` is Unix seconds (what
    the source's `collect(now)` takes); `sleep` is injectable for tests."""

    def __init__(
        self,
        source: Source,
        *,
        gpus: tuple[str, ...] = (),
        uuid: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._source, self._gpus, self._uuid = source, gpus, uuid
        self._clock, self._sleep = clock, sleep
        self._last: float | None = None
        self.errors: list[str] = []
        """Partial-failure codes the source reported (NVML return-code names)."""

    def collect(self) -> tuple[float, Collection]:
        """Sample once, at least GPM_MIN_SECONDS after the previous sample."""
        now = self._clock()
        if self._last is not None and now - self._last < GPM_MIN_SECONDS:
            self._sleep(GPM_MIN_SECONDS - (now - self._last))
            now = self._clock()
        collection = self._source.collect(now)
        self.errors.extend(collection.errors)
        self._last = now
        return now, collection

    def window(self) -> NvmlWindow:
        """A window for one cell (or the attach window)."""
        return NvmlWindow(self, self._gpus, self._uuid)

    def close(self) -> None:
        self._source.close()


class NvmlWindow:
    """`MeasureWindow` over an `NvmlSampler` (see the module docstring)."""

    def __init__(self, sampler: NvmlSampler, gpus: tuple[str, ...], uuid: str | None) -> None:
        self._sampler, self._gpus, self._uuid = sampler, gpus, uuid
        self._start: float | None = None
        self._activity: GpuActivity | None = None

    @property
    def min_seconds(self) -> float:
        return GPM_MIN_SECONDS

    def begin(self) -> None:
        self._start, _ = self._sampler.collect()

    def end(self) -> None:
        if self._start is None:
            raise RuntimeError("end() before begin()")
        now, collection = self._sampler.collect()
        self._activity = activity_from(
            collection, now - self._start, gpus=self._gpus, uuid=self._uuid
        )

    def activity(self) -> GpuActivity | None:
        return self._activity
