"""InfiniBand / RoCE port counters and state from sysfs (`/sys/class/infiniband`).

For every `<device>/ports/<port>` under the root (injectable; tests use
`gpumetrics.testing.sysfs`), one `collect` reads:

- `rate`, `state`, `phys_state`, `link_layer` (CLI: `ibstat <device> <port>`);
- `counters/*`: the PMA port counters (CLI: `perfquery -x` for the 64-bit extended set,
  `perfquery` for the 32-bit PortCounters set);
- `hw_counters/{np_cnp_sent,rp_cnp_handled,np_ecn_marked_roce_packets}`: RoCE congestion
  (CLI: `rdma statistic show link <device>/<port>`).

Units: `port_{xmit,rcv}_data` count 4-byte words and are exported as bytes (words x 4, always;
never x link width, the bug node_exporter and netdata shipped); `rate` is exported in bytes per
second per direction; everything else is a count.

Counter width. The kernel exposes the four data/packet counters as 64-bit values when the
adapter reports extended counters (PortCountersExtended) and as 32-bit PortCounters otherwise;
the error counters are always their PMA widths (16, 8 or 4 bits) and `port_xmit_wait` is always
32-bit (see `PMA_COUNTER_BITS`). A port's data/packet counters are taken as 64-bit when the
caller says so (`extended_counters=True`), or when the tree shows it: the kernel's extended
group is the only one with `unicast_*`/`multicast_*` packet files, and a value above 2^32 - 1
can only come from a 64-bit counter. That decision is sticky per port.

Every counter is exported as a cumulative value that never goes down: the first reading plus
the sum of the increases seen since, so neither a wrap nor a reset shows Prometheus a counter
going backwards. A 64-bit counter never wraps, so a drop is a reset and adds the new reading.
A drop of a narrower counter is a wrap or a reset (`perfquery -R`, a driver reload, or a
64-bit counter not yet known as one), told apart by the line rate: the increase a wrap would
imply, (2^bits - previous + current) words x 4 bytes — or packets x 26 bytes, the smallest IB
packet — over the seconds since the last cycle (`collect(now)`), beyond the port's `rate`
(with 10 % slack for timing) cannot have happened, so it was a reset. Counters are reset
together: one reset seen on a port's data or packet counters makes every drop on that port
a reset. A plausible drop is one wrap (`derive.counter_delta(bits=width)`); without a `rate`
or a forward clock the 2^(bits-1) rule of `counter_delta` decides alone.

Degrading: a missing file, a file that reads `N/A (no PMA)`, or a read the kernel refuses as
unsupported (EINVAL, EOPNOTSUPP, ENOSYS, ...) yields no sample and no error. Text that does not
parse is error code "parse", any other unreadable file "read", and a 32-bit traffic counter
stuck at its maximum (PMA counters saturate rather than wrap) "saturated"; the rest of the
port and the other ports still flow. A missing root, or one with no ports, raises
`UnavailableError`.
"""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, TypeVar

from ..catalog import network
from ..derive.rates import counter_delta, is_saturated
from ..errors import UnavailableError
from ..samples import Collection, Sample

__all__ = [
    "DEFAULT_ROOT",
    "PHYS_STATE_LINK_UP",
    "PMA_COUNTER_BITS",
    "PORT_STATE_ACTIVE",
    "InfinibandSource",
    "parse_counter",
    "parse_rate",
    "parse_state",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Where the kernel lists RDMA devices.
DEFAULT_ROOT: Final = Path("/sys/class/infiniband")

#: `state` code of an active port (IB_PORT_ACTIVE; `ibstat` "State: Active").
PORT_STATE_ACTIVE: Final = 4
#: `phys_state` code of a trained link (`ibstat` "Physical state: LinkUp").
PHYS_STATE_LINK_UP: Final = 5

#: Width in bits of each `counters/` file in the 32-bit PortCounters set, as declared by
#: `PORT_PMA_ATTR` in the kernel's drivers/infiniband/core/sysfs.c. With extended counters the
#: four data/packet counters are 64-bit; the others keep these widths.
PMA_COUNTER_BITS: Final[Mapping[str, int]] = MappingProxyType(
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

_DATA = (("port_xmit_data", "tx"), ("port_rcv_data", "rx"))
_PACKETS = (("port_xmit_packets", "tx"), ("port_rcv_packets", "rx"))
_XMIT_WAIT = "port_xmit_wait"
#: The counters that are 64-bit when the adapter has extended counters.
_EXTENDABLE = frozenset(name for name, _ in (*_DATA, *_PACKETS))
#: Traffic counters whose saturation makes bandwidth read as zero: reported as "saturated".
_TRAFFIC = _EXTENDABLE | {_XMIT_WAIT}
_ERRORS = tuple(name for name in PMA_COUNTER_BITS if name not in _TRAFFIC)
#: Files only the kernel's extended (64-bit, IETF-capable) counter group has.
_EXTENDED_ONLY = (
    "unicast_xmit_packets",
    "unicast_rcv_packets",
    "multicast_xmit_packets",
    "multicast_rcv_packets",
)
_CONGESTION_EVENTS = ("np_cnp_sent", "rp_cnp_handled", "np_ecn_marked_roce_packets")
_WIDE = 64
_MAX32 = 2**32 - 1

#: errno values with which sysfs says "not supported here" rather than "broken".
_UNSUPPORTED = frozenset(
    {errno.ENOENT, errno.ENODEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS, errno.ENODATA}
)
_NOT_AVAILABLE = "N/A"  # older kernels print "N/A (no PMA)" without a PMA; newer fail with ENOSYS

_HINT = (
    "this host has no InfiniBand/RoCE adapter (check `ibstat`), or the container cannot see "
    "/sys/class/infiniband: mount the host's /sys read-only (the device entries there are "
    "symlinks into /sys/devices), or pass the right root"
)

_RATE = re.compile(r"(\d+(?:\.\d+)?) Gb/sec(?: \(.*\))?")
_STATE = re.compile(r"(\d+):\s*(\S.*)")

_Port = tuple[str, str]  # (ib_device, port) label values
_Series = tuple[str, str, str]  # (ib_device, port, counter file)


def parse_rate(text: str) -> float:
    """Line rate per direction in bytes/s from a `rate` file (`ibstat` "Rate").

    `"400 Gb/sec (4X NDR)"` -> 5e10; `"2.5 Gb/sec (1X SDR)"` -> 3.125e8. The kernel has
    already multiplied lane rate by width, so only the leading Gb/s figure is used.
    """
    match = _RATE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an IB rate: {text!r}")
    return float(match.group(1)) * 1e9 / 8


def parse_state(text: str) -> tuple[int, str]:
    """`(code, name)` from a `state` or `phys_state` file: `"4: ACTIVE"` -> `(4, "ACTIVE")`."""
    match = _STATE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an IB port state: {text!r}")
    return int(match.group(1)), match.group(2)


def parse_counter(text: str) -> int:
    """A counter file's value: an unsigned decimal (`"%u\\n"` / `"%llu\\n"` in the kernel)."""
    value = text.strip()
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"not an unsigned decimal counter: {text!r}")
    return int(value)


#: Bytes on the wire per unit of each rate-checked counter: data counts 4-byte words; a
#: packet is at least an IB header and CRCs (LRH 8 + BTH 12 + ICRC 4 + VCRC 2 bytes).
_BYTES_PER_UNIT: Final[Mapping[str, int]] = MappingProxyType(
    {
        "port_xmit_data": 4,
        "port_rcv_data": 4,
        "port_xmit_packets": 26,
        "port_rcv_packets": 26,
    }
)
#: A wrap may imply up to this multiple of the line rate before it is called a reset.
_RATE_SLACK: Final = 1.1


@dataclass(frozen=True, slots=True)
class _Running:
    """A counter's last raw reading, when it was read, and the cumulative value exported."""

    raw: int
    total: int
    at: float


class _Reader:
    """File reads of one collect cycle; partial failures are kept as error codes."""

    __slots__ = ("errors",)

    def __init__(self) -> None:
        self.errors: list[str] = []

    def text(self, path: Path) -> str | None:
        """Stripped content, or None when absent, unsupported or `N/A (no PMA)`."""
        try:
            text = path.read_text(encoding="ascii", errors="replace").strip()
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                self.fail("read", path, exc)
            return None
        return None if text.startswith(_NOT_AVAILABLE) else text

    def parsed(self, path: Path, parse: Callable[[str], _T]) -> _T | None:
        """`parse(text)`, or None when there is no text or it does not parse ("parse")."""
        text = self.text(path)
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError as exc:
            self.fail("parse", path, exc)
            return None

    def fail(self, code: str, path: Path, detail: object) -> None:
        self.errors.append(code)
        _log.debug("infiniband %s error at %s: %s", code, path, detail)


class InfinibandSource:
    """Per-port IB/RoCE counters, line rate, state and link layer from sysfs.

    `root` is the class directory (default `/sys/class/infiniband`). `extended_counters`
    declares the data/packet counter width for every port: True for 64-bit, False for the
    32-bit PortCounters set, None (default) to detect it per port (see the module docstring).
    """

    def __init__(self, root: Path = DEFAULT_ROOT, *, extended_counters: bool | None = None) -> None:
        self._root = root
        self._extended = extended_counters
        self._wide_ports: set[_Port] = set()
        self._running: dict[_Series, _Running] = {}

    @property
    def name(self) -> str:
        return "infiniband"

    @property
    def root(self) -> Path:
        return self._root

    def collect(self, now: float) -> Collection:
        """One sample of every port; `now` (seconds) times the wrap-or-reset judgement."""
        reader = _Reader()
        samples: list[Sample] = []
        for device, port, path in self._ports():
            samples.extend(self._port_samples(reader, (device, port), path, now))
        return Collection(tuple(samples), tuple(reader.errors))

    def close(self) -> None:
        """Forget wrap-tracking state: the next collect starts each series at its raw value."""
        self._running.clear()
        self._wide_ports.clear()

    def _ports(self) -> list[tuple[str, str, Path]]:
        if not self._root.is_dir():
            raise UnavailableError("InfiniBand sysfs", f"{self._root} does not exist", _HINT)
        ports = [
            (device.name, port.name, port)
            for device in _subdirs(self._root)
            for port in _subdirs(device / "ports")
        ]
        if not ports:
            raise UnavailableError("InfiniBand sysfs", f"no ports under {self._root}", _HINT)
        return ports

    def _port_samples(
        self, reader: _Reader, labels: _Port, path: Path, now: float
    ) -> Iterator[Sample]:
        rate = reader.parsed(path / "rate", parse_rate)
        yield from _port_facts(reader, labels, path, rate)
        yield from self._counter_samples(reader, labels, path / "counters", rate, now)
        yield from _congestion_samples(reader, labels, path / "hw_counters")

    def _counter_samples(
        self, reader: _Reader, labels: _Port, counters: Path, rate: float | None, now: float
    ) -> Iterator[Sample]:
        raw: dict[str, int] = {}
        for name in PMA_COUNTER_BITS:
            value = reader.parsed(counters / name, parse_counter)
            if value is not None:
                raw[name] = value
        wide = self._is_extended(labels, counters, raw)
        bits = {
            name: _WIDE if wide and name in _EXTENDABLE else PMA_COUNTER_BITS[name] for name in raw
        }
        reset = self._port_was_reset(labels, raw, bits, rate, now)
        exported: dict[str, float] = {}
        for name, value in raw.items():
            if name in _TRAFFIC and bits[name] < _WIDE and is_saturated(value, bits[name]):
                reader.fail("saturated", counters / name, value)
            total = self._cumulative((*labels, name), value, bits[name], reset=reset, now=now)
            exported[name] = float(total)
        yield from _counter_families(labels, exported)

    def _port_was_reset(
        self,
        labels: _Port,
        raw: Mapping[str, int],
        bits: Mapping[str, int],
        rate: float | None,
        now: float,
    ) -> bool:
        """True when a data/packet counter dropped in a way no wrap explains (module doc)."""
        for name, per_unit in _BYTES_PER_UNIT.items():
            previous = self._running.get((*labels, name))
            if previous is None or name not in raw or raw[name] >= previous.raw:
                continue
            if bits[name] >= _WIDE:
                return True  # a 64-bit counter does not wrap
            elapsed = now - previous.at
            if rate is None or elapsed <= 0:
                continue  # nothing to judge by: counter_delta's half-range rule decides
            wrapped = (1 << bits[name]) - previous.raw + raw[name]
            if wrapped * per_unit / elapsed > rate * _RATE_SLACK:
                return True
        return False

    def _is_extended(self, labels: _Port, counters: Path, raw: Mapping[str, int]) -> bool:
        if self._extended is not None:
            return self._extended
        if labels not in self._wide_ports and (
            any((counters / name).exists() for name in _EXTENDED_ONLY)
            or any(raw.get(name, 0) > _MAX32 for name in _EXTENDABLE)
        ):
            self._wide_ports.add(labels)
        return labels in self._wide_ports

    def _cumulative(self, series: _Series, raw: int, bits: int, *, reset: bool, now: float) -> int:
        """First reading + the sum of increases since: a drop adds `raw` after a reset (and
        always at 64 bits), one wrap's worth otherwise."""
        previous = self._running.get(series)
        if previous is None:
            total = raw
        elif raw >= previous.raw:
            total = previous.total + raw - previous.raw
        elif reset or bits >= _WIDE:
            total = previous.total + raw
        else:
            total = previous.total + round(counter_delta(previous.raw, raw, bits=bits))
        self._running[series] = _Running(raw, total, now)
        return total


def _subdirs(path: Path) -> list[Path]:
    """Directories in `path` (following the kernel's symlinks), by name; [] if unreadable."""
    try:
        entries = [entry for entry in path.iterdir() if entry.is_dir()]
    except OSError:
        return []
    return sorted(entries, key=lambda entry: (len(entry.name), entry.name))


def _port_facts(reader: _Reader, labels: _Port, path: Path, rate: float | None) -> Iterator[Sample]:
    """Info (link layer), line rate (read by the caller) and active state of one port
    (`ibstat`)."""
    link_layer = reader.text(path / "link_layer")
    if link_layer:
        yield network.IB_PORT_INFO.sample(1.0, *labels, link_layer)
    if rate is not None:
        yield network.IB_RATE.sample(rate, *labels)
    state = reader.parsed(path / "state", parse_state)
    phys_state = reader.parsed(path / "phys_state", parse_state)
    if state is not None and phys_state is not None:
        active = state[0] == PORT_STATE_ACTIVE and phys_state[0] == PHYS_STATE_LINK_UP
        yield network.IB_STATE.sample(1.0 if active else 0.0, *labels)


def _counter_families(labels: _Port, exported: Mapping[str, float]) -> Iterator[Sample]:
    """Catalog samples from exported counter values (data still in 4-byte words)."""
    for name, direction in _DATA:
        if name in exported:
            yield network.IB_DATA_BYTES.sample(exported[name] * 4, *labels, direction)
    for name, direction in _PACKETS:
        if name in exported:
            yield network.IB_PACKETS.sample(exported[name], *labels, direction)
    if _XMIT_WAIT in exported:
        yield network.IB_XMIT_WAIT.sample(exported[_XMIT_WAIT], *labels)
    for name in _ERRORS:
        if name in exported:
            yield network.IB_ERRORS.sample(exported[name], *labels, name)


def _congestion_samples(reader: _Reader, labels: _Port, hw_counters: Path) -> Iterator[Sample]:
    """RoCE congestion events (64-bit driver counters, passed through raw)."""
    for event in _CONGESTION_EVENTS:
        value = reader.parsed(hw_counters / event, parse_counter)
        if value is not None:
            yield network.IB_CONGESTION.sample(float(value), *labels, event)
