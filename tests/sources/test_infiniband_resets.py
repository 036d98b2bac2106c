"""InfinibandSource: resets told apart from 32-bit wraps by the line rate, on fake sysfs.

Each expected value is worked out by hand from the counter values written to the fake tree:
a wrap adds 2^32 - previous + current words, a reset adds the current reading, and the
exported counter never goes backwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumetrics import catalog
from gpumetrics.sources.infiniband import InfinibandSource
from gpumetrics.testing.sysfs import CounterSet, FakeInfinibandTree, FakePort

net = catalog.network
PORT = ("mlx5_0", "1")
T0 = 1_700_000_000.0
WRAP = 2**32


@pytest.fixture
def tree(tmp_path: Path) -> FakeInfinibandTree:
    return FakeInfinibandTree(tmp_path / "infiniband")


def _collect(source: InfinibandSource, now: float) -> dict[tuple[str, tuple[str, ...]], float]:
    collection = source.collect(now)
    return {(s.metric, s.labels): s.value for s in collection.samples}


def _tx_bytes(source: InfinibandSource, now: float) -> float:
    return _collect(source, now)[(net.IB_DATA_BYTES.name, (*PORT, "tx"))]


def _busy(port: FakePort, words: int, packets: int) -> None:
    """A port that has carried `words` of data in `packets` packets each way."""
    for direction in ("xmit", "rcv"):
        port.set_counter(f"port_{direction}_data", words)
        port.set_counter(f"port_{direction}_packets", packets)


def test_reset_from_the_upper_half_on_an_unproven_64_bit_port_is_not_a_wrap(
    tree: FakeInfinibandTree,
) -> None:
    """The issue's case: 64-bit counters (no unicast_* files, nothing above 2^32 yet) reset
    from 3e9 words. As a 32-bit wrap that is +5.18 GB, plausible at NDR in a second; but the
    packet counters dropped from 2.9 M, and a packet wrap would be 4.29 G packets x 26 bytes
    = 111.6 GB in one second, twice what 400 Gb/s (50 GB/s) can carry: a reset."""
    port = tree.add_port(counter_set=CounterSet.EXTENDED_NOIETF, width=4, speed="NDR")
    _busy(port, 3_000_000_000, 2_900_000)
    source = InfinibandSource(tree.root)
    assert _tx_bytes(source, T0) == 12e9
    port.reset_counters()
    port.add_bytes(tx=400)
    port.add_packets(tx=1)
    assert (WRAP - 2_900_000 + 1) * 26 == 111_593_749_722  # bytes the packet wrap implies
    assert _tx_bytes(source, T0 + 1) == 12e9 + 400
    phantom = (WRAP - 3_000_000_000 + 100) * 4
    assert phantom == 5_179_869_584  # what reading it as a wrap would have invented


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        # 1,294,967,306 words x 4 / 0.1 s = 51.8 GB/s > 1.1 x 12.5 GB/s: a reset
        (0.1, 12e9 + 40),
        # the same drop over a whole second is 5.18 GB/s: a plausible wrap
        (1.0, (WRAP + 10) * 4),
    ],
)
def test_data_drop_judged_by_the_ports_rate(
    tree: FakeInfinibandTree, elapsed: float, expected: float
) -> None:
    port = tree.add_port(counter_set=CounterSet.PMA, width=4, speed="EDR")  # 100 Gb/s
    port.set_counter("port_xmit_data", 3_000_000_000)
    source = InfinibandSource(tree.root)
    _tx_bytes(source, T0)
    port.set_counter("port_xmit_data", 10)
    assert _tx_bytes(source, T0 + elapsed) == expected


def test_a_true_wrap_near_line_rate_is_kept(tree: FakeInfinibandTree) -> None:
    """4.9 GB in 0.1 s at NDR (49 GB/s < 55): one wrap, every byte counted."""
    port = tree.add_port(counter_set=CounterSet.PMA, width=4, speed="NDR")
    port.set_counter("port_xmit_data", WRAP - 1000)
    source = InfinibandSource(tree.root)
    _tx_bytes(source, T0)
    port.add_bytes(tx=4_900_000_000)
    port.add_packets(tx=1_200_000)
    assert port.counter("port_xmit_data") == 1_225_000_000 - 1000
    assert _tx_bytes(source, T0 + 0.1) == (WRAP - 1000) * 4 + 4_900_000_000


def test_reset_from_above_2_32_never_goes_backwards(tree: FakeInfinibandTree) -> None:
    port = tree.add_port(counter_set=CounterSet.EXTENDED_NOIETF)
    _busy(port, 5_000_000_000, 4_000_000)  # above 2^32: proven 64-bit
    source = InfinibandSource(tree.root)
    assert _tx_bytes(source, T0) == 20e9
    port.reset_counters()
    assert _tx_bytes(source, T0 + 1) == 20e9
    port.add_bytes(tx=8)
    assert _tx_bytes(source, T0 + 2) == 20e9 + 8


def test_a_port_reset_resets_its_error_counters_too(tmp_path: Path) -> None:
    """perfquery -R clears every counter: once the traffic counters prove a reset, the
    16-bit symbol_error's drop from 65,530 is a reset too (+0), not a wrap (+6). On a port
    where only symbol_error drops there is no such evidence, and it stays a wrap."""
    tree = FakeInfinibandTree(tmp_path / "infiniband")
    reset = tree.add_port("mlx5_0", 1, counter_set=CounterSet.PMA, speed="EDR")
    alone = tree.add_port("mlx5_1", 1, counter_set=CounterSet.PMA, speed="EDR")
    _busy(reset, 3_000_000_000, 2_900_000)
    for port in (reset, alone):
        port.set_counter("symbol_error", 65_530)
    source = InfinibandSource(tree.root)
    source.collect(T0)
    reset.reset_counters()
    alone.set_counter("symbol_error", 0)
    values = _collect(source, T0 + 1)
    assert values[(net.IB_ERRORS.name, ("mlx5_0", "1", "symbol_error"))] == 65_530
    assert values[(net.IB_ERRORS.name, ("mlx5_1", "1", "symbol_error"))] == 65_536
    assert values[(net.IB_DATA_BYTES.name, ("mlx5_0", "1", "rx"))] == 12e9


def test_without_a_rate_the_half_range_rule_decides(tree: FakeInfinibandTree) -> None:
    """No `rate` file: nothing to judge a drop by, so counter_delta's rule stands (a drop
    from the upper half is a wrap, from the lower half a reset)."""
    port = tree.add_port(counter_set=CounterSet.PMA)
    (port.path / "rate").unlink()
    _busy(port, 3_000_000_000, 2_900_000)
    source = InfinibandSource(tree.root)
    source.collect(T0)
    port.reset_counters()
    values = _collect(source, T0 + 1)
    assert values[(net.IB_DATA_BYTES.name, (*PORT, "tx"))] == WRAP * 4
    assert values[(net.IB_PACKETS.name, (*PORT, "tx"))] == 2_900_000
