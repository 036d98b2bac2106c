"""Sources turn hardware and engines into typed samples in base units.

Each source is isolated: one failing never stops another. Only `sources/nvml*` imports pynvml.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..samples import Collection

__all__ = ["Source"]


@runtime_checkable
class Source(Protocol):
    """A thing the Sampler samples on its own clock.

    `collect(now)` returns this cycle's samples (raw cumulative counters, gauges, None-free)
    and the codes of partial failures; it raises when nothing could be sampled. `now` is the
    Unix time of the cycle, passed in so sources never read a clock for derived values.
    """

    @property
    def name(self) -> str: ...

    def collect(self, now: float) -> Collection: ...

    def close(self) -> None: ...
