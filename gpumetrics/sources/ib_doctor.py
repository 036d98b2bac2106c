"""What the InfiniBand/RoCE sysfs tree offers, port by port: the IB half of
`gpumetrics doctor` (ibstat's view, plus whether the counters the exporter reads are there)."""

from __future__ import annotations

from pathlib import Path

from ..samples import Check
from .infiniband import DEFAULT_ROOT, parse_rate, parse_state

__all__ = ["probe_infiniband"]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _port_check(device: str, port: Path) -> Check:
    area, name = f"ib {device}", f"port {port.name}"
    link_layer = _read(port / "link_layer") or "?"
    state_text, rate_text = _read(port / "state"), _read(port / "rate")
    try:
        state = parse_state(state_text or "")[1]
    except ValueError:
        state = state_text or "unreadable"
    try:
        rate = f"{parse_rate(rate_text or '') * 8 / 1e9:g} Gb/s"
    except ValueError:
        rate = "rate unknown"
    data = _read(port / "counters" / "port_xmit_data")
    extended = (port / "counters" / "unicast_xmit_packets").exists()
    detail = f"{link_layer}, {state}, {rate}"
    if data is None or data.startswith("N/A"):
        return Check(
            area,
            name,
            "warn",
            f"{detail}; data counters not readable ({data})",
            "the adapter has no PMA counters here: bandwidth cannot be measured",
        )
    detail += "; 64-bit counters" if extended else "; 32-bit PMA counters (wraps are tracked)"
    if link_layer == "Ethernet":
        roce = (port / "hw_counters" / "np_cnp_sent").exists()
        detail += "; RoCE congestion counters" + ("" if roce else " missing")
    status = "ok" if state == "ACTIVE" else "warn"
    return Check(area, name, status, detail, "" if status == "ok" else "port is not ACTIVE")


def probe_infiniband(root: Path = DEFAULT_ROOT) -> list[Check]:
    """One check per port, or one saying why there is nothing to read."""
    if not root.is_dir():
        return [
            Check(
                "node",
                "InfiniBand",
                "skip",
                f"no {root}",
                "no IB/RoCE adapters, or mount the host's /sys read-only into the container",
            )
        ]
    checks = [
        _port_check(device.name, port)
        for device in sorted(root.iterdir())
        for port in sorted((device / "ports").glob("*"))
        if port.is_dir()
    ]
    return checks or [
        Check(
            "node",
            "InfiniBand",
            "warn",
            f"{root} has no readable ports",
            "mount the host's /sys: the entries are symlinks into /sys/devices",
        )
    ]
