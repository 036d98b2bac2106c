"""The fake /sys/class/infiniband tree writes the kernel's formats and counts like hardware."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumetrics.testing.sysfs import (
    EXTENDED_ONLY_COUNTERS,
    NO_PMA,
    PMA_WIDTHS,
    ROCE_HW_COUNTERS,
    CounterSet,
    FakeInfinibandTree,
    FakePort,
    LinkLayer,
    fake_infiniband_tree,
    phys_state_text,
    rate_text,
    state_text,
)


@pytest.fixture
def tree(tmp_path: Path) -> FakeInfinibandTree:
    return FakeInfinibandTree(tmp_path / "class" / "infiniband")


def _counter_files(port: FakePort) -> dict[str, str]:
    return {path.name: path.read_text() for path in (port.path / "counters").iterdir()}


@pytest.mark.parametrize(
    ("width", "speed", "line"),
    [
        (1, "SDR", "2.5 Gb/sec (1X SDR)"),
        (4, "SDR", "10 Gb/sec (4X SDR)"),
        (4, "DDR", "20 Gb/sec (4X DDR)"),
        (4, "QDR", "40 Gb/sec (4X QDR)"),
        (12, "QDR", "120 Gb/sec (12X QDR)"),
        (4, "FDR10", "40 Gb/sec (4X FDR10)"),
        (4, "FDR", "56 Gb/sec (4X FDR)"),
        (1, "FDR", "14 Gb/sec (1X FDR)"),
        (4, "EDR", "100 Gb/sec (4X EDR)"),
        (2, "HDR", "100 Gb/sec (2X HDR)"),
        (4, "HDR", "200 Gb/sec (4X HDR)"),
        (4, "NDR", "400 Gb/sec (4X NDR)"),
        (8, "NDR", "800 Gb/sec (8X NDR)"),
        (4, "XDR", "800 Gb/sec (4X XDR)"),
    ],
)
def test_rate_text_matches_the_kernel(width: int, speed: str, line: str) -> None:
    assert rate_text(width, speed) == line


def test_rate_text_rejects_unknown_speed_and_width() -> None:
    with pytest.raises(ValueError, match="speed"):
        rate_text(4, "ZDR")
    with pytest.raises(ValueError, match="width"):
        rate_text(3, "NDR")


def test_state_lines() -> None:
    assert state_text(4) == "4: ACTIVE"
    assert state_text(1) == "1: DOWN"
    assert state_text(9) == "9: UNKNOWN"
    assert phys_state_text(5) == "5: LinkUp"
    assert phys_state_text(7) == "7: Phy Test"
    assert phys_state_text(12) == "12: <unknown>"


def test_port_files_are_written_as_the_kernel_prints_them(tree: FakeInfinibandTree) -> None:
    port = tree.add_port("mlx5_0", 1)
    assert port.path == tree.root / "mlx5_0" / "ports" / "1"
    assert (port.device, port.port) == ("mlx5_0", "1")
    assert (port.path / "rate").read_text() == "400 Gb/sec (4X NDR)\n"
    assert (port.path / "state").read_text() == "4: ACTIVE\n"
    assert (port.path / "phys_state").read_text() == "5: LinkUp\n"
    assert (port.path / "link_layer").read_text() == "InfiniBand\n"
    assert (tree.root / "mlx5_0" / "node_type").read_text() == "1: CA\n"
    assert set(_counter_files(port).values()) == {"0\n"}
    assert not (port.path / "hw_counters").exists()


@pytest.mark.parametrize(
    ("counter_set", "extra", "data_bits"),
    [
        (CounterSet.PMA, set(), 32),
        (CounterSet.EXTENDED, set(EXTENDED_ONLY_COUNTERS), 64),
        (CounterSet.EXTENDED_NOIETF, set(), 64),
    ],
)
def test_counter_sets_have_the_kernels_files_and_widths(
    tree: FakeInfinibandTree, counter_set: CounterSet, extra: set[str], data_bits: int
) -> None:
    port = tree.add_port(counter_set=counter_set)
    assert set(_counter_files(port)) == set(PMA_WIDTHS) | extra
    assert port.width("port_xmit_data") == data_bits
    assert port.width("port_rcv_packets") == data_bits
    assert port.width("port_xmit_wait") == 32
    assert port.width("symbol_error") == 16
    assert port.width("local_link_integrity_errors") == 4


def test_no_pma_counters_read_na(tree: FakeInfinibandTree) -> None:
    port = tree.add_port(counter_set=CounterSet.NO_PMA)
    files = _counter_files(port)
    assert set(files) == set(PMA_WIDTHS)
    assert set(files.values()) == {NO_PMA + "\n"}


def test_one_counter_can_read_na(tree: FakeInfinibandTree) -> None:
    port = tree.add_port()
    port.set_not_available("link_downed")
    assert port.read("counters/link_downed") == "N/A (no PMA)"
    assert port.counter("symbol_error") == 0
    with pytest.raises(KeyError, match="not in"):
        port.set_not_available("no_such_counter")


def test_add_bytes_counts_4_byte_words(tree: FakeInfinibandTree) -> None:
    port = tree.add_port()
    port.add_bytes(tx=4096, rx=8)
    assert port.counter("port_xmit_data") == 1024
    assert port.counter("port_rcv_data") == 2
    assert (port.path / "counters" / "port_xmit_data").read_text() == "1024\n"
    with pytest.raises(ValueError, match="4-byte"):
        port.add_bytes(tx=6)


def test_add_packets(tree: FakeInfinibandTree) -> None:
    port = tree.add_port()
    port.add_packets(tx=3, rx=4)
    port.add_packets(tx=1)
    assert (port.counter("port_xmit_packets"), port.counter("port_rcv_packets")) == (4, 4)


def test_32_bit_counters_wrap_and_64_bit_ones_do_not(tmp_path: Path) -> None:
    narrow = FakeInfinibandTree(tmp_path / "a").add_port(counter_set=CounterSet.PMA)
    wide = FakeInfinibandTree(tmp_path / "b").add_port(counter_set=CounterSet.EXTENDED)
    for port in (narrow, wide):
        port.set_counter("port_xmit_data", 2**32 - 2)
        port.add_bytes(tx=20)  # 5 words
    assert narrow.counter("port_xmit_data") == 3
    assert wide.counter("port_xmit_data") == 2**32 + 3


def test_error_counters_wrap_at_their_width(tree: FakeInfinibandTree) -> None:
    port = tree.add_port()
    port.set_counter("link_downed", 255)
    assert port.add_counter("link_downed", 1) == 0
    port.set_counter("excessive_buffer_overrun_errors", 15)
    assert port.add_counter("excessive_buffer_overrun_errors", 2) == 1


def test_saturating_counters_stop_at_all_ones(tree: FakeInfinibandTree) -> None:
    port = tree.add_port(counter_set=CounterSet.PMA, saturating=True)
    port.set_counter("port_rcv_data", 2**32 - 3)
    port.add_bytes(rx=400)
    assert port.counter("port_rcv_data") == 2**32 - 1
    assert port.add_counter("symbol_error", 70_000) == 65_535


def test_set_counter_checks_the_width(tree: FakeInfinibandTree) -> None:
    port = tree.add_port(counter_set=CounterSet.PMA)
    with pytest.raises(ValueError, match="32-bit"):
        port.set_counter("port_xmit_data", 2**32)
    with pytest.raises(ValueError, match="8-bit"):
        port.set_counter("link_downed", 256)
    with pytest.raises(ValueError, match="go up"):
        port.add_counter("link_downed", -1)
    with pytest.raises(KeyError, match="unicast_xmit_packets"):
        port.set_counter("unicast_xmit_packets", 1)


def test_reset_counters(tree: FakeInfinibandTree) -> None:
    port = tree.add_port()
    port.add_bytes(tx=4, rx=4)
    port.reset_counters()
    assert set(_counter_files(port).values()) == {"0\n"}


def test_roce_port_has_hw_counters(tree: FakeInfinibandTree) -> None:
    port = tree.add_port(link_layer=LinkLayer.ETHERNET, width=4, speed="EDR")
    assert port.read("link_layer") == "Ethernet"
    assert port.read("rate") == "100 Gb/sec (4X EDR)"
    files = {path.name for path in (port.path / "hw_counters").iterdir()}
    assert files == {*ROCE_HW_COUNTERS, "lifespan"}
    port.set_hw_counter("np_cnp_sent", 2**64 - 1)
    assert port.add_hw_counter("np_cnp_sent", 2) == 1
    assert port.add_hw_counter("rp_cnp_handled", 5) == 5
    assert (port.path / "hw_counters" / "rp_cnp_handled").read_text() == "5\n"


def test_hw_counters_can_be_forced_either_way(tree: FakeInfinibandTree) -> None:
    ib = tree.add_port("mlx5_0", hw_counters=True)
    roce = tree.add_port("mlx5_1", link_layer=LinkLayer.ETHERNET, hw_counters=False)
    assert (ib.path / "hw_counters" / "np_cnp_sent").exists()
    assert not (roce.path / "hw_counters").exists()


def test_state_rate_and_raw_text_can_change(tree: FakeInfinibandTree) -> None:
    port = tree.add_port()
    port.set_state(1, 2)
    port.set_rate(1, "SDR")
    port.write("counters/port_rcv_data", "garbage")
    assert port.read("state") == "1: DOWN"
    assert port.read("phys_state") == "2: Polling"
    assert port.read("rate") == "2.5 Gb/sec (1X SDR)"
    assert (port.path / "counters" / "port_rcv_data").read_text() == "garbage"


def test_many_devices_and_ports(tmp_path: Path) -> None:
    tree = fake_infiniband_tree(tmp_path / "ib", devices=2, ports=2, speed="HDR")
    assert [(p.device, p.port) for p in tree.ports] == [
        ("mlx5_0", "1"),
        ("mlx5_0", "2"),
        ("mlx5_1", "1"),
        ("mlx5_1", "2"),
    ]
    assert tree.port("mlx5_1", 2).read("rate") == "200 Gb/sec (4X HDR)"
    assert sorted(p.name for p in tree.root.iterdir()) == ["mlx5_0", "mlx5_1"]
