"""A fake `/sys/class/infiniband` tree in a directory, in the kernel's exact text formats.

The formats follow drivers/infiniband/core/sysfs.c: counter files are `"%u\\n"` (`"%llu\\n"`
for 64-bit ones), `rate` is `"%d%s Gb/sec (%dX%s)\\n"` (lane rate x width, `.5` for 2.5),
`state` and `phys_state` are `"%d: %s\\n"`, `link_layer` is `InfiniBand|Ethernet`, and a
device without a PMA reads `N/A (no PMA)` (older kernels) in every counter file.

    tree = FakeInfinibandTree(tmp_path / "infiniband")
    port = tree.add_port("mlx5_0", 1, counter_set=CounterSet.PMA)
    port.add_bytes(tx=4096)          # port_xmit_data += 1024 words, wrapping at 2^32
    InfinibandSource(tree.root).collect(now)

The fake models the kernel and the hardware on its own (its width tables are not imported
from the source under test), so a wrong table on either side shows up as a failing test.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Final

__all__ = [
    "EXTENDED_ONLY_COUNTERS",
    "LANE_RATES",
    "NO_PMA",
    "PMA_WIDTHS",
    "ROCE_HW_COUNTERS",
    "CounterSet",
    "FakeInfinibandTree",
    "FakePort",
    "LinkLayer",
    "fake_infiniband_tree",
    "phys_state_text",
    "rate_text",
    "state_text",
]

#: What a counter file of a device without a Performance Management Agent reads.
NO_PMA: Final = "N/A (no PMA)"

#: The kernel's 32-bit PortCounters group: file name -> width in bits (`PORT_PMA_ATTR`).
PMA_WIDTHS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "symbol_error": 16,
        "link_error_recovery": 8,
        "link_downed": 8,
        "port_rcv_errors": 16,
        "port_rcv_remote_physical_errors": 16,
        "port_rcv_switch_relay_errors": 16,
        "port_xmit_discards": 16,
        "port_xmit_constraint_errors": 8,
        "port_rcv_constraint_errors": 8,
        "local_link_integrity_errors": 4,
        "excessive_buffer_overrun_errors": 4,
        "VL15_dropped": 16,
        "port_xmit_data": 32,
        "port_rcv_data": 32,
        "port_xmit_packets": 32,
        "port_rcv_packets": 32,
        "port_xmit_wait": 32,
    }
)
_EXTENDED_DATA = ("port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets")
#: Files that only the extended group (`pma_group_ext`) has; all 64-bit.
EXTENDED_ONLY_COUNTERS: Final = (
    "unicast_xmit_packets",
    "unicast_rcv_packets",
    "multicast_xmit_packets",
    "multicast_rcv_packets",
)

#: Lane rate in units of 100 Mb/s per `ibstat` speed name, as `rate_show` has it.
LANE_RATES: Final[Mapping[str, int]] = MappingProxyType(
    {
        "SDR": 25,
        "DDR": 50,
        "QDR": 100,
        "FDR10": 100,
        "FDR": 140,
        "EDR": 250,
        "HDR": 500,
        "NDR": 1000,
        "XDR": 2000,
    }
)
_LINK_WIDTHS = (1, 2, 4, 8, 12)
_PORT_STATES = ("NOP", "DOWN", "INIT", "ARMED", "ACTIVE", "ACTIVE_DEFER")
_PHYS_STATES = (
    "<unknown>",
    "Sleep",
    "Polling",
    "Disabled",
    "PortConfigurationTraining",
    "LinkUp",
    "LinkErrorRecovery",
    "Phy Test",
)

#: A few of mlx5's per-port `hw_counters/` (64-bit), written for RoCE ports.
ROCE_HW_COUNTERS: Final = (
    "np_cnp_sent",
    "np_ecn_marked_roce_packets",
    "rp_cnp_handled",
    "rp_cnp_ignored",
    "out_of_sequence",
    "packet_seq_err",
)
_HW_COUNTER_BITS = 64


class CounterSet(StrEnum):
    """Which `counters/` group the kernel created for a port (`get_counter_table`)."""

    #: 32-bit PortCounters only: the adapter has no extended counters.
    PMA = "pma"
    #: 64-bit data/packet counters plus unicast/multicast packets (`pma_group_ext`).
    EXTENDED = "extended"
    #: 64-bit data/packet counters without the unicast/multicast files (`pma_group_noietf`).
    EXTENDED_NOIETF = "extended_noietf"
    #: No PMA at all: the PortCounters files exist and read `N/A (no PMA)`.
    NO_PMA = "no_pma"

    def widths(self) -> dict[str, int]:
        """File name -> width in bits of every counter file in this group."""
        widths = dict(PMA_WIDTHS)
        if self in (CounterSet.EXTENDED, CounterSet.EXTENDED_NOIETF):
            widths.update(dict.fromkeys(_EXTENDED_DATA, 64))
        if self is CounterSet.EXTENDED:
            widths.update(dict.fromkeys(EXTENDED_ONLY_COUNTERS, 64))
        return widths


class LinkLayer(StrEnum):
    """`link_layer` as the kernel prints it (Ethernet is RoCE)."""

    INFINIBAND = "InfiniBand"
    ETHERNET = "Ethernet"


def rate_text(width: int, speed: str) -> str:
    """The `rate` line for a link: `rate_text(4, "NDR") == "400 Gb/sec (4X NDR)"`."""
    if speed not in LANE_RATES:
        raise ValueError(f"unknown IB speed {speed!r}; known: {', '.join(LANE_RATES)}")
    if width not in _LINK_WIDTHS:
        raise ValueError(f"IB link width must be one of {_LINK_WIDTHS}, got {width}")
    deci_gbps = LANE_RATES[speed] * width
    half = ".5" if deci_gbps % 10 else ""
    return f"{deci_gbps // 10}{half} Gb/sec ({width}X {speed})"


def state_text(code: int) -> str:
    """The `state` line: `state_text(4) == "4: ACTIVE"`."""
    name = _PORT_STATES[code] if 0 <= code < len(_PORT_STATES) else "UNKNOWN"
    return f"{code}: {name}"


def phys_state_text(code: int) -> str:
    """The `phys_state` line: `phys_state_text(5) == "5: LinkUp"`."""
    name = _PHYS_STATES[code] if 0 <= code < len(_PHYS_STATES) else "<unknown>"
    return f"{code}: {name}"


def _write_line(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="ascii")


class FakePort:
    """One `<device>/ports/<port>` directory, with counters that advance like hardware.

    Counters wrap modulo their width; with `saturating=True` they stop at all-ones instead,
    as the InfiniBand spec asks of PMA counters. 64-bit counters wrap at 2^64 either way.
    """

    def __init__(self, path: Path, counter_set: CounterSet, *, saturating: bool = False) -> None:
        self._path = path
        self._counter_set = counter_set
        self._widths = counter_set.widths()
        self._saturating = saturating

    @property
    def path(self) -> Path:
        return self._path

    @property
    def device(self) -> str:
        return self._path.parent.parent.name

    @property
    def port(self) -> str:
        return self._path.name

    @property
    def counter_set(self) -> CounterSet:
        return self._counter_set

    def width(self, name: str) -> int:
        """Width in bits of counter file `name` in this port's group."""
        try:
            return self._widths[name]
        except KeyError:
            raise KeyError(f"{name!r} is not in the {self._counter_set} counter set") from None

    def counter(self, name: str) -> int:
        """Raw value of `counters/<name>` (data counters in 4-byte words)."""
        return int(self.read(f"counters/{name}"))

    def set_counter(self, name: str, value: int) -> None:
        """Write `counters/<name>`; the value must fit the counter's width."""
        if not 0 <= value < 1 << self.width(name):
            raise ValueError(f"{value} does not fit the {self.width(name)}-bit {name}")
        _write_line(self._path / "counters" / name, str(value))

    def add_counter(self, name: str, amount: int) -> int:
        """Advance `counters/<name>` by `amount`, wrapping (or saturating); the new raw value."""
        if amount < 0:
            raise ValueError("counters only go up")
        limit = 1 << self.width(name)
        value = self.counter(name) + amount
        value = min(value, limit - 1) if self._saturating else value % limit
        self.set_counter(name, value)
        return value

    def add_bytes(self, *, tx: int = 0, rx: int = 0) -> None:
        """Count `tx`/`rx` bytes (multiples of 4) into `port_{xmit,rcv}_data` as 4-byte words."""
        if tx % 4 or rx % 4:
            raise ValueError("port_{xmit,rcv}_data count 4-byte words: bytes must be x4")
        self.add_counter("port_xmit_data", tx // 4)
        self.add_counter("port_rcv_data", rx // 4)

    def add_packets(self, *, tx: int = 0, rx: int = 0) -> None:
        """Count packets into `port_{xmit,rcv}_packets`."""
        self.add_counter("port_xmit_packets", tx)
        self.add_counter("port_rcv_packets", rx)

    def set_not_available(self, name: str | None = None) -> None:
        """Make `counters/<name>` (every counter when None) read `N/A (no PMA)`."""
        names = tuple(self._widths) if name is None else (name,)
        for counter in names:
            self.width(counter)  # KeyError for a file this group does not have
            _write_line(self._path / "counters" / counter, NO_PMA)

    def write(self, relative: str, text: str) -> None:
        """Write any text, exactly, at a path under the port (`"counters/port_rcv_data"`)."""
        path = self._path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="ascii")

    def read(self, relative: str) -> str:
        """Stripped content of a file under the port."""
        return (self._path / relative).read_text(encoding="ascii").strip()

    def set_rate(self, width: int, speed: str) -> None:
        """Write `rate` for a `width`X link at `speed` (`4, "NDR"`: `400 Gb/sec (4X NDR)`)."""
        _write_line(self._path / "rate", rate_text(width, speed))

    def set_state(self, state: int, phys_state: int) -> None:
        """Write `state` (4 = ACTIVE) and `phys_state` (5 = LinkUp)."""
        _write_line(self._path / "state", state_text(state))
        _write_line(self._path / "phys_state", phys_state_text(phys_state))

    def set_link_layer(self, link_layer: LinkLayer) -> None:
        _write_line(self._path / "link_layer", link_layer.value)

    def hw_counter(self, name: str) -> int:
        """Raw value of `hw_counters/<name>`."""
        return int(self.read(f"hw_counters/{name}"))

    def set_hw_counter(self, name: str, value: int) -> None:
        """Write `hw_counters/<name>` (a 64-bit driver counter)."""
        if not 0 <= value < 1 << _HW_COUNTER_BITS:
            raise ValueError(f"{value} does not fit the 64-bit {name}")
        _write_line(self._path / "hw_counters" / name, str(value))

    def add_hw_counter(self, name: str, amount: int) -> int:
        """Advance `hw_counters/<name>` by `amount` (wrapping at 2^64); the new value."""
        value = (self.hw_counter(name) + amount) % (1 << _HW_COUNTER_BITS)
        self.set_hw_counter(name, value)
        return value

    def reset_counters(self) -> None:
        """Every counter back to 0 (`N/A (no PMA)` without a PMA), as `perfquery -x -R` does."""
        for name in self._widths:
            _write_line(self._path / "counters" / name, "0")
        if self._counter_set is CounterSet.NO_PMA:
            self.set_not_available()


def _write_port_attributes(path: Path) -> None:
    """The static port files a real tree has beside the ones the source reads."""
    for name, text in (
        ("lid", "0x1"),
        ("lid_mask_count", "0"),
        ("sm_lid", "0x1"),
        ("sm_sl", "0"),
        ("cap_mask", "0x2651e848"),
    ):
        _write_line(path / name, text)


class FakeInfinibandTree:
    """A `/sys/class/infiniband` look-alike rooted at `root` (created if missing)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._ports: dict[tuple[str, str], FakePort] = {}
        root.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        return self._root

    @property
    def ports(self) -> tuple[FakePort, ...]:
        return tuple(self._ports.values())

    def port(self, device: str = "mlx5_0", port: int = 1) -> FakePort:
        """A port added earlier."""
        return self._ports[(device, str(port))]

    def add_port(
        self,
        device: str = "mlx5_0",
        port: int = 1,
        *,
        counter_set: CounterSet = CounterSet.EXTENDED,
        link_layer: LinkLayer = LinkLayer.INFINIBAND,
        width: int = 4,
        speed: str = "NDR",
        state: int = 4,
        phys_state: int = 5,
        hw_counters: bool | None = None,
        saturating: bool = False,
    ) -> FakePort:
        """Create `<device>/ports/<port>` with all counters at 0, active at `width`X `speed`.

        `hw_counters` (default: only for Ethernet, i.e. RoCE, ports) writes
        `ROCE_HW_COUNTERS` at 0 and `lifespan`.
        """
        device_dir = self._root / device
        if not device_dir.exists():
            _write_line(device_dir / "node_type", "1: CA")
        fake = FakePort(device_dir / "ports" / str(port), counter_set, saturating=saturating)
        fake.reset_counters()
        _write_port_attributes(fake.path)
        fake.set_rate(width, speed)
        fake.set_state(state, phys_state)
        fake.set_link_layer(link_layer)
        if hw_counters is None:
            hw_counters = link_layer is LinkLayer.ETHERNET
        if hw_counters:
            for name in ROCE_HW_COUNTERS:
                fake.set_hw_counter(name, 0)
            _write_line(fake.path / "hw_counters" / "lifespan", "10")
        self._ports[(device, str(port))] = fake
        return fake


def fake_infiniband_tree(
    root: Path,
    *,
    devices: int = 1,
    ports: int = 1,
    counter_set: CounterSet = CounterSet.EXTENDED,
    link_layer: LinkLayer = LinkLayer.INFINIBAND,
    width: int = 4,
    speed: str = "NDR",
) -> FakeInfinibandTree:
    """A tree with devices `mlx5_0..mlx5_<devices-1>`, each with ports `1..ports`, alike."""
    tree = FakeInfinibandTree(root)
    for index in range(devices):
        for port in range(1, ports + 1):
            tree.add_port(
                f"mlx5_{index}",
                port,
                counter_set=counter_set,
                link_layer=link_layer,
                width=width,
                speed=speed,
            )
    return tree
