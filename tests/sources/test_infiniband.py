"""InfinibandSource on fake sysfs trees: units, rates, state, wraparound, degrading."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumetrics import catalog
from gpumetrics.errors import UnavailableError
from gpumetrics.sources import Source
from gpumetrics.sources.infiniband import (
    DEFAULT_ROOT,
    InfinibandSource,
    parse_counter,
    parse_rate,
    parse_state,
)
from gpumetrics.testing.sample_values import scalar_values
from gpumetrics.testing.sysfs import (
    LANE_RATES,
    CounterSet,
    FakeInfinibandTree,
    LinkLayer,
    fake_infiniband_tree,
    rate_text,
)

net = catalog.network
PORT = ("mlx5_0", "1")
NOW = 1_700_000_000.0

Values = dict[tuple[str, tuple[str, ...]], float]


@pytest.fixture
def tree(tmp_path: Path) -> FakeInfinibandTree:
    return FakeInfinibandTree(tmp_path / "infiniband")


def _collect(source: InfinibandSource, now: float = NOW) -> Values:
    collection = source.collect(now)
    assert collection.errors == ()
    return scalar_values(collection)


def _bytes(values: Values, direction: str, port: tuple[str, str] = PORT) -> float:
    return values[(net.IB_DATA_BYTES.name, (*port, direction))]


def test_is_a_source_named_infiniband_with_the_kernel_default_root() -> None:
    source = InfinibandSource()
    assert isinstance(source, Source)
    assert source.name == "infiniband"
    assert source.root == DEFAULT_ROOT == Path("/sys/class/infiniband")


def test_every_sample_is_a_catalog_entry_with_its_labels(tree: FakeInfinibandTree) -> None:
    tree.add_port(link_layer=LinkLayer.ETHERNET)
    for sample in InfinibandSource(tree.root).collect(NOW).samples:
        spec = catalog.get(sample.metric)
        assert spec in net.ALL
        assert len(sample.labels) == len(spec.labels)


def test_data_counters_are_4_byte_words_times_4_never_times_link_width(
    tree: FakeInfinibandTree,
) -> None:
    port = tree.add_port(width=2, speed="NDR")  # 200 Gb/sec (2X NDR): width x 4 would be x2
    port.set_counter("port_xmit_data", 1_234_567_890_123)  # above 2^32: the 64-bit set
    port.set_counter("port_rcv_data", 25)
    values = _collect(InfinibandSource(tree.root))
    assert _bytes(values, "tx") == 4_938_271_560_492.0
    assert _bytes(values, "rx") == 100.0


def test_packets_xmit_wait_and_error_counters(tree: FakeInfinibandTree) -> None:
    port = tree.add_port()
    port.add_packets(tx=7, rx=9)
    port.set_counter("port_xmit_wait", 1234)
    port.set_counter("symbol_error", 3)
    port.set_counter("link_downed", 2)
    port.set_counter("VL15_dropped", 5)
    values = _collect(InfinibandSource(tree.root))
    assert values[(net.IB_PACKETS.name, (*PORT, "tx"))] == 7.0
    assert values[(net.IB_PACKETS.name, (*PORT, "rx"))] == 9.0
    assert values[(net.IB_XMIT_WAIT.name, PORT)] == 1234.0
    errors = {labels[2]: v for (name, labels), v in values.items() if name == net.IB_ERRORS.name}
    assert errors["symbol_error"] == 3.0
    assert errors["link_downed"] == 2.0
    assert errors["VL15_dropped"] == 5.0
    assert len(errors) == 12  # every PortCounters error file; unicast/multicast are not errors
    assert errors["port_rcv_errors"] == 0.0


@pytest.mark.parametrize(
    ("text", "bytes_per_second"),
    [
        ("2.5 Gb/sec (1X SDR)", 312_500_000.0),
        ("10 Gb/sec (4X SDR)", 1.25e9),
        ("20 Gb/sec (4X DDR)", 2.5e9),
        ("40 Gb/sec (4X QDR)", 5e9),
        ("40 Gb/sec (4X FDR10)", 5e9),
        ("56 Gb/sec (4X FDR)", 7e9),
        ("100 Gb/sec (4X EDR)", 12.5e9),
        ("200 Gb/sec (4X HDR)", 25e9),
        ("100 Gb/sec (2X HDR)", 12.5e9),
        ("400 Gb/sec (4X NDR)", 5e10),
        ("800 Gb/sec (4X XDR)", 1e11),
        ("25 Gb/sec (1X EDR)", 3.125e9),
        ("200 Gb/sec (2X HDR)", 25e9),  # as RoCE ports on some drivers report 200GbE
        ("400 Gb/sec\n", 5e10),
    ],
)
def test_parse_rate_gives_bytes_per_second_per_direction(
    text: str, bytes_per_second: float
) -> None:
    assert parse_rate(text) == bytes_per_second


@pytest.mark.parametrize("speed", list(LANE_RATES))
@pytest.mark.parametrize("width", [1, 2, 4, 8, 12])
def test_parse_rate_reads_every_kernel_rate_line(width: int, speed: str) -> None:
    expected_bits = LANE_RATES[speed] * width * 1e8  # lane rate is in 100 Mb/s units
    assert parse_rate(rate_text(width, speed)) == pytest.approx(expected_bits / 8)


@pytest.mark.parametrize("text", ["", "fast", "Gb/sec", "400 Mb/sec (4X NDR)", "-1 Gb/sec"])
def test_parse_rate_rejects_what_is_not_a_rate(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_rate_of_a_roce_port(tree: FakeInfinibandTree) -> None:
    tree.add_port(link_layer=LinkLayer.ETHERNET, width=4, speed="EDR")
    values = _collect(InfinibandSource(tree.root))
    assert values[(net.IB_RATE.name, PORT)] == 12.5e9


def test_parse_state_and_counter() -> None:
    assert parse_state("4: ACTIVE\n") == (4, "ACTIVE")
    assert parse_state("7: Phy Test") == (7, "Phy Test")
    assert parse_counter("18446744073709551615\n") == 2**64 - 1
    for bad in ("ACTIVE", "4 ACTIVE", ""):
        with pytest.raises(ValueError, match="state"):
            parse_state(bad)
    for bad in ("-1", "1e3", "0x10", "", "１"):
        with pytest.raises(ValueError, match="counter"):
            parse_counter(bad)


@pytest.mark.parametrize(
    ("state", "phys_state", "active"),
    [
        (4, 5, 1.0),  # ACTIVE, LinkUp
        (4, 6, 0.0),  # ACTIVE, LinkErrorRecovery
        (2, 5, 0.0),  # INIT (no subnet manager yet), LinkUp
        (1, 2, 0.0),  # DOWN, Polling (no cable)
        (1, 3, 0.0),  # DOWN, Disabled
        (5, 5, 0.0),  # ACTIVE_DEFER
    ],
)
def test_port_is_active_only_when_active_and_link_up(
    tree: FakeInfinibandTree, state: int, phys_state: int, active: float
) -> None:
    tree.add_port(state=state, phys_state=phys_state)
    values = _collect(InfinibandSource(tree.root))
    assert values[(net.IB_STATE.name, PORT)] == active


@pytest.mark.parametrize("link_layer", list(LinkLayer))
def test_link_layer_is_a_label_of_port_info(
    tree: FakeInfinibandTree, link_layer: LinkLayer
) -> None:
    tree.add_port(link_layer=link_layer)
    values = _collect(InfinibandSource(tree.root))
    info = [labels for (name, labels) in values if name == net.IB_PORT_INFO.name]
    assert info == [(*PORT, link_layer.value)]
    assert values[(net.IB_PORT_INFO.name, (*PORT, link_layer.value))] == 1.0


def test_32_bit_data_counter_wrap_adds_the_true_delta(tree: FakeInfinibandTree) -> None:
    port = tree.add_port(counter_set=CounterSet.PMA)
    port.set_counter("port_xmit_data", 2**32 - 100)
    source = InfinibandSource(tree.root)
    first = _bytes(_collect(source), "tx")
    assert first == (2**32 - 100) * 4

    port.add_bytes(tx=2400)  # 600 words: wraps to 500
    assert port.counter("port_xmit_data") == 500
    # 2400 bytes in a second at NDR: a plausible wrap, counted as one.
    second = _bytes(_collect(source, NOW + 1), "tx")
    assert second == (2**32 + 500) * 4  # = first + 2400
    assert second - first == 2400

    port.add_bytes(tx=40)
    third = _bytes(_collect(source, NOW + 2), "tx")
    assert third - second == 40
    assert first < second < third


def test_narrow_error_counters_wrap_at_their_own_width(tree: FakeInfinibandTree) -> None:
    port = tree.add_port(counter_set=CounterSet.PMA)
    port.set_counter("symbol_error", 65_530)  # 16-bit
    port.set_counter("link_downed", 250)  # 8-bit
    source = InfinibandSource(tree.root)
    source.collect(NOW)
    port.add_counter("symbol_error", 10)
    port.add_counter("link_downed", 10)
    assert (port.counter("symbol_error"), port.counter("link_downed")) == (4, 4)
    values = _collect(source)
    assert values[(net.IB_ERRORS.name, (*PORT, "symbol_error"))] == 65_540.0
    assert values[(net.IB_ERRORS.name, (*PORT, "link_downed"))] == 260.0


def test_64_bit_reset_adds_the_new_reading_never_goes_back(tree: FakeInfinibandTree) -> None:
    port = tree.add_port(counter_set=CounterSet.EXTENDED)
    port.set_counter("port_rcv_data", 3_000_000_000)
    source = InfinibandSource(tree.root)
    assert _bytes(_collect(source), "rx") == 12e9
    port.reset_counters()  # perfquery -x -R
    port.add_bytes(rx=8)
    # The 8 bytes since the reset are added; the 12 GB before it are not lost or repeated.
    assert _bytes(_collect(source, NOW + 1), "rx") == 12e9 + 8


def test_width_is_detected_from_a_value_above_32_bits(tree: FakeInfinibandTree) -> None:
    port = tree.add_port(counter_set=CounterSet.EXTENDED_NOIETF)  # no unicast_* files
    port.set_counter("port_xmit_data", 2**32 - 1)
    source = InfinibandSource(tree.root)
    source.collect(NOW)  # looks 32-bit so far (and at its maximum: reported "saturated")
    port.add_counter("port_xmit_data", 5)
    assert _bytes(_collect(source), "tx") == (2**32 + 4) * 4
    port.reset_counters()  # now known 64-bit: a drop is a reset, not a wrap
    assert _bytes(_collect(source), "tx") == (2**32 + 4) * 4  # and never goes back


def test_caller_can_declare_the_width(tree: FakeInfinibandTree) -> None:
    port = tree.add_port(counter_set=CounterSet.EXTENDED_NOIETF)
    port.set_counter("port_xmit_data", 3_000_000_000)
    declared = InfinibandSource(tree.root, extended_counters=True)
    guessed = InfinibandSource(tree.root)
    declared.collect(NOW)
    guessed.collect(NOW)
    port.set_counter("port_xmit_data", 10)  # a reset on a 64-bit counter
    assert _bytes(_collect(declared, NOW + 1), "tx") == 12e9 + 40
    # Without the declaration, and with only this counter to judge by, the drop from the
    # upper half is a plausible wrap at NDR: 5.2 GB in a second is a tenth of line rate.
    assert _bytes(_collect(guessed, NOW + 1), "tx") == (2**32 + 10) * 4


def test_saturated_32_bit_traffic_counter_is_reported(tree: FakeInfinibandTree) -> None:
    port = tree.add_port(counter_set=CounterSet.PMA, saturating=True)
    port.set_counter("port_rcv_data", 2**32 - 10)
    port.add_bytes(rx=400)
    assert port.counter("port_rcv_data") == 2**32 - 1
    collection = InfinibandSource(tree.root).collect(NOW)
    assert collection.errors == ("saturated",)
    assert _bytes(scalar_values(collection), "rx") == (2**32 - 1) * 4


def test_no_pma_files_are_skipped_without_error(tree: FakeInfinibandTree) -> None:
    tree.add_port(counter_set=CounterSet.NO_PMA)
    collection = InfinibandSource(tree.root).collect(NOW)
    assert collection.errors == ()
    names = {sample.metric for sample in collection.samples}
    assert names == {net.IB_PORT_INFO.name, net.IB_RATE.name, net.IB_STATE.name}


def test_one_na_file_drops_only_its_series(tree: FakeInfinibandTree) -> None:
    port = tree.add_port()
    port.set_not_available("port_rcv_data")
    values = _collect(InfinibandSource(tree.root))
    assert (net.IB_DATA_BYTES.name, (*PORT, "rx")) not in values
    assert (net.IB_DATA_BYTES.name, (*PORT, "tx")) in values


def test_garbage_is_a_parse_error_and_the_rest_still_flows(tree: FakeInfinibandTree) -> None:
    port = tree.add_port()
    port.add_bytes(tx=64)
    port.write("counters/port_rcv_data", "garbage\n")
    port.write("rate", "fast\n")
    collection = InfinibandSource(tree.root).collect(NOW)
    assert collection.errors == ("parse", "parse")
    values = scalar_values(collection)
    assert _bytes(values, "tx") == 64.0
    assert (net.IB_DATA_BYTES.name, (*PORT, "rx")) not in values
    assert (net.IB_RATE.name, PORT) not in values
    assert values[(net.IB_STATE.name, PORT)] == 1.0


def test_unreadable_file_is_a_read_error(tree: FakeInfinibandTree) -> None:
    port = tree.add_port()
    counter = port.path / "counters" / "symbol_error"
    counter.unlink()
    counter.mkdir()  # reading it fails with EISDIR
    collection = InfinibandSource(tree.root).collect(NOW)
    assert collection.errors == ("read",)
    assert (net.IB_ERRORS.name, (*PORT, "symbol_error")) not in scalar_values(collection)


def test_roce_congestion_counters(tree: FakeInfinibandTree) -> None:
    port = tree.add_port(link_layer=LinkLayer.ETHERNET, width=2, speed="HDR")
    port.set_hw_counter("np_cnp_sent", 7)
    port.set_hw_counter("rp_cnp_handled", 5)
    port.add_hw_counter("np_ecn_marked_roce_packets", 3)
    port.set_hw_counter("rp_cnp_ignored", 99)  # not in the catalog: not exported
    values = _collect(InfinibandSource(tree.root))
    events = {
        labels[2]: v for (name, labels), v in values.items() if name == net.IB_CONGESTION.name
    }
    assert events == {"np_cnp_sent": 7.0, "rp_cnp_handled": 5.0, "np_ecn_marked_roce_packets": 3.0}


def test_infiniband_port_without_hw_counters_has_no_congestion(tree: FakeInfinibandTree) -> None:
    tree.add_port(link_layer=LinkLayer.INFINIBAND)
    values = _collect(InfinibandSource(tree.root))
    assert not [key for key in values if key[0] == net.IB_CONGESTION.name]


def test_missing_root_is_unavailable_with_a_hint(tmp_path: Path) -> None:
    source = InfinibandSource(tmp_path / "absent")
    with pytest.raises(UnavailableError, match="does not exist") as raised:
        source.collect(NOW)
    assert "/sys/class/infiniband" in raised.value.hint
    assert "ibstat" in raised.value.hint


def test_root_without_ports_is_unavailable(tree: FakeInfinibandTree) -> None:
    (tree.root / "mlx5_0").symlink_to(tree.root / "dangling")  # a /sys/class link, no /sys
    with pytest.raises(UnavailableError, match="no ports"):
        InfinibandSource(tree.root).collect(NOW)


def test_multiple_devices_and_ports(tmp_path: Path) -> None:
    tree = fake_infiniband_tree(tmp_path / "ib", devices=3, ports=2)
    for index, port in enumerate(tree.ports):
        port.add_bytes(tx=4 * (index + 1))
    values = _collect(InfinibandSource(tree.root))
    expected = {
        ("mlx5_0", "1"): 4.0,
        ("mlx5_0", "2"): 8.0,
        ("mlx5_1", "1"): 12.0,
        ("mlx5_1", "2"): 16.0,
        ("mlx5_2", "1"): 20.0,
        ("mlx5_2", "2"): 24.0,
    }
    assert {port: _bytes(values, "tx", port) for port in expected} == expected
    states = [labels for (name, labels) in values if name == net.IB_STATE.name]
    assert states == list(expected)


def test_a_wrapping_port_does_not_disturb_its_neighbour(tmp_path: Path) -> None:
    tree = fake_infiniband_tree(tmp_path / "ib", devices=1, ports=2, counter_set=CounterSet.PMA)
    first, second = tree.ports
    first.set_counter("port_xmit_data", 2**32 - 1)
    second.set_counter("port_xmit_data", 100)
    source = InfinibandSource(tree.root)
    source.collect(NOW)
    first.add_counter("port_xmit_data", 2)
    second.add_counter("port_xmit_data", 2)
    values = _collect(source)
    assert _bytes(values, "tx", ("mlx5_0", "1")) == (2**32 + 1) * 4
    assert _bytes(values, "tx", ("mlx5_0", "2")) == 102 * 4


def test_close_forgets_wrap_state(tree: FakeInfinibandTree) -> None:
    port = tree.add_port(counter_set=CounterSet.PMA)
    port.set_counter("port_xmit_data", 2**32 - 1)
    source = InfinibandSource(tree.root)
    source.collect(NOW)
    port.add_counter("port_xmit_data", 3)
    source.close()
    assert _bytes(_collect(source), "tx") == 8.0  # raw 2 words: counted afresh
