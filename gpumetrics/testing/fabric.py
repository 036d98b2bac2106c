"""A fake InfiniBand fabric whose counters move at known rates: the IB half of the demo mode
(`gpumetrics serve --fake-ib N`) and of integration tests that check rates end to end.

Counters are the exact integral of constant per-port rates from `epoch` to the cycle's time
(rounded down to whole 4-byte words), so `rate(gpumetrics_ib_port_data_bytes_total[1m])`
must come out at `tx_bytes_per_second` / `rx_bytes_per_second`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..samples import Collection
from ..sources.infiniband import InfinibandSource
from .sysfs import CounterSet, FakeInfinibandTree, fake_infiniband_tree

__all__ = ["FabricRates", "FakeFabricSource"]

_WORD = 4


@dataclass(frozen=True, slots=True)
class FabricRates:
    """Per-port traffic of the fake fabric (bytes/s and packets per byte)."""

    tx_bytes_per_second: float = 20e9
    rx_bytes_per_second: float = 18e9
    bytes_per_packet: float = 4096.0
    xmit_wait_per_second: float = 1000.0


class FakeFabricSource:
    """An InfinibandSource over a temporary fake tree that it advances before every read."""

    def __init__(
        self,
        ports: int,
        *,
        epoch: float,
        rates: FabricRates = FabricRates(),
        root: Path | None = None,
        counter_set: CounterSet = CounterSet.EXTENDED,
    ) -> None:
        if ports <= 0:
            raise ValueError(f"ports must be > 0, got {ports}")
        self._tmp = None if root is not None else tempfile.TemporaryDirectory(prefix="fake-ib-")
        base = root if root is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.tree: FakeInfinibandTree = fake_infiniband_tree(
            base, devices=ports, ports=1, counter_set=counter_set
        )
        self._epoch, self._rates = epoch, rates
        self._inner = InfinibandSource(base, extended_counters=counter_set is not CounterSet.PMA)

    @property
    def name(self) -> str:
        return self._inner.name

    def advance_to(self, now: float) -> None:
        """Set every counter to its integral at `now`."""
        elapsed = max(0.0, now - self._epoch)
        rates = self._rates
        tx = int(rates.tx_bytes_per_second * elapsed) // _WORD
        rx = int(rates.rx_bytes_per_second * elapsed) // _WORD
        for port in self.tree.ports:
            for name, value in (
                ("port_xmit_data", tx),
                ("port_rcv_data", rx),
                ("port_xmit_packets", int(tx * _WORD / rates.bytes_per_packet)),
                ("port_rcv_packets", int(rx * _WORD / rates.bytes_per_packet)),
                ("port_xmit_wait", int(rates.xmit_wait_per_second * elapsed)),
            ):
                port.set_counter(name, value % (1 << port.width(name)))

    def collect(self, now: float) -> Collection:
        self.advance_to(now)
        return self._inner.collect(now)

    def close(self) -> None:
        self._inner.close()
        if self._tmp is not None:
            self._tmp.cleanup()
