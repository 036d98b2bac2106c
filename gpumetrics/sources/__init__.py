"""Sources turn hardware and engines into typed samples in base units.

Each source is isolated: one failing never stops another. Only the NVML side imports pynvml:
`nvml*.py`, `gpm.py` (GPM profiling metrics) and `xid.py` (XID events); the InfiniBand and
engine sources never load it (tests/test_boundaries.py enforces both).
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
