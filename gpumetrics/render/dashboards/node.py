"""GPU node: memory, power and energy, clocks and throttling, temperatures, PCIe, NVLink,
InfiniBand and hardware errors of one or more nodes."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import timeseries

from ...catalog import MetricSpec
from ...catalog import gpu as g
from ...catalog import mig as m
from ...catalog import network as n
from ..rules import DEFAULT_CONFIG
from ..rules.promql import increase, rate, sel
from .panels import Q, Row, build_dashboard, describe, stat_panel, timeseries_panel
from .variables import (
    GPU,
    NODE,
    RATE_INTERVAL,
    datasource_variable,
    fleet_variables,
    gpu_variables,
)

__all__ = ["ANSWERS", "TITLE", "node_dashboard"]

TITLE = "GPU node"
ANSWERS = (
    "Is the hardware healthy and what holds it back? Memory, power and energy, clocks and "
    "throttle reasons, temperatures, PCIe, NVLink per GPU (per link in a collapsed row, with serve "
    "--nvlink-per-link), InfiniBand/RoCE per port, and ECC, XID, NVLink and row-remapping "
    "errors."
)

_GPU_WHO = "GPU {{gpu}} on {{instance}}"
_PORT_WHO = "{{ib_device}}/{{port}} on {{instance}}"
_BAD = ((None, "green"), (1, "red"))
_NOT_IDLE = f'{GPU}, reason!="gpu_idle"'


def _overview() -> Row:
    return Row(
        "Overview",
        [
            stat_panel(
                "GPUs lost",
                describe(g.GPU_UP, "Counts GPUs reading 0 (GPULost alert)."),
                "none",
                [Q(f"count({sel(g.GPU_UP, GPU)} == 0) or vector(0)", "lost")],
                steps=_BAD,
            ),
            stat_panel(
                "XID errors in range",
                describe(g.GPU_XID_ERRORS, "Summed over the dashboard's time range."),
                "none",
                [Q(f"sum({increase(g.GPU_XID_ERRORS, '$__range', GPU)}) or vector(0)", "XIDs")],
                steps=((None, "green"), (1, "orange")),
            ),
            stat_panel(
                "NVLink links down",
                f"{describe(g.NVLINK_LINKS)} {describe(g.NVLINK_LINKS_UP)} Links minus links up.",
                "none",
                [
                    Q(
                        f"sum({sel(g.NVLINK_LINKS, GPU)} - {sel(g.NVLINK_LINKS_UP, GPU)})"
                        " or vector(0)",
                        "down",
                    )
                ],
                steps=_BAD,
            ),
            stat_panel(
                "Energy in range",
                describe(g.GPU_ENERGY, "Summed over the selected GPUs and time range."),
                "joule",
                [Q(f"sum({increase(g.GPU_ENERGY, '$__range', GPU)})", "energy")],
            ),
        ],
    )


def _memory_power() -> Row:
    return Row(
        "Memory, power and energy",
        [
            timeseries_panel(
                "Framebuffer memory",
                " ".join(
                    describe(spec)
                    for spec in (g.GPU_MEMORY_USED, g.GPU_MEMORY_RESERVED, g.GPU_MEMORY_TOTAL)
                ),
                "bytes",
                [
                    Q(sel(g.GPU_MEMORY_USED, GPU), f"used {_GPU_WHO}"),
                    Q(sel(g.GPU_MEMORY_RESERVED, GPU), f"reserved {_GPU_WHO}"),
                    Q(sel(g.GPU_MEMORY_TOTAL, GPU), f"total {_GPU_WHO}"),
                ],
                min_value=0.0,
            ),
            timeseries_panel(
                "Memory by process",
                describe(g.GPU_PROCESS_MEMORY),
                "bytes",
                [Q(sel(g.GPU_PROCESS_MEMORY, GPU), "{{process_name}} ({{pid}}) " + _GPU_WHO)],
                stacked=True,
                min_value=0.0,
            ),
            timeseries_panel(
                "Power draw vs limit",
                f"{describe(g.GPU_POWER)} {describe(g.GPU_POWER_LIMIT)}",
                "watt",
                [
                    Q(sel(g.GPU_POWER, GPU), f"draw {_GPU_WHO}"),
                    Q(sel(g.GPU_POWER_LIMIT, GPU), f"limit {_GPU_WHO}"),
                ],
                min_value=0.0,
            ),
            timeseries_panel(
                "Average power from energy",
                describe(g.GPU_ENERGY, "rate() over the panel interval: average watts."),
                "watt",
                [Q(rate(g.GPU_ENERGY, RATE_INTERVAL, GPU), _GPU_WHO)],
                min_value=0.0,
            ),
        ],
    )


def _clocks() -> Row:
    return Row(
        "Clocks, throttling and temperature",
        [
            timeseries_panel(
                "Clocks vs maximum",
                f"{describe(g.GPU_CLOCK)} {describe(g.GPU_CLOCK_MAX)}",
                "hertz",
                [
                    Q(sel(g.GPU_CLOCK, GPU), "{{clock}} " + _GPU_WHO),
                    Q(sel(g.GPU_CLOCK_MAX, GPU), "max {{clock}} " + _GPU_WHO),
                ],
                min_value=0.0,
            ),
            timeseries_panel(
                "Temperatures",
                describe(g.GPU_TEMPERATURE),
                "celsius",
                [Q(sel(g.GPU_TEMPERATURE, GPU), "{{sensor}} " + _GPU_WHO)],
                steps=((None, "green"), (80.0, "orange"), (90.0, "red")),
                show_thresholds=True,
            ),
            timeseries_panel(
                "Throttle reasons active",
                describe(g.GPU_THROTTLE_ACTIVE, "gpu_idle is left out; only active reasons show."),
                "none",
                [Q(f"{sel(g.GPU_THROTTLE_ACTIVE, _NOT_IDLE)} > 0", "{{reason}} " + _GPU_WHO)],
                steps=_BAD,
                min_value=0.0,
                max_value=1.0,
            ),
            timeseries_panel(
                "Share of time throttled by reason",
                describe(g.GPU_THROTTLE_TIME, "rate(): seconds throttled per second."),
                "percentunit",
                [Q(rate(g.GPU_THROTTLE_TIME, RATE_INTERVAL, GPU), "{{reason}} " + _GPU_WHO)],
                steps=((None, "green"), (DEFAULT_CONFIG.throttle_share, "orange")),
                show_thresholds=True,
                min_value=0.0,
            ),
        ],
    )


def _interconnect() -> Row:
    return Row(
        "PCIe and NVLink",
        [
            timeseries_panel(
                "PCIe throughput",
                describe(g.GPU_PCIE_BYTES),
                "Bps",
                [Q(rate(g.GPU_PCIE_BYTES, RATE_INTERVAL, GPU), "{{direction}} " + _GPU_WHO)],
                min_value=0.0,
            ),
            timeseries_panel(
                "PCIe replays",
                describe(g.GPU_PCIE_REPLAYS),
                "short",
                [Q(rate(g.GPU_PCIE_REPLAYS, RATE_INTERVAL, GPU), _GPU_WHO)],
                steps=((None, "green"), (0.1, "orange")),
                axis_label="replays/s",
                min_value=0.0,
            ),
            timeseries_panel(
                "NVLink throughput",
                describe(g.NVLINK_DATA_BYTES),
                "Bps",
                [Q(rate(g.NVLINK_DATA_BYTES, RATE_INTERVAL, GPU), "{{direction}} " + _GPU_WHO)],
                min_value=0.0,
            ),
            timeseries_panel(
                "NVLink links up",
                f"{describe(g.NVLINK_LINKS_UP)} {describe(g.NVLINK_LINKS)}",
                "short",
                [
                    Q(sel(g.NVLINK_LINKS_UP, GPU), "up " + _GPU_WHO),
                    Q(sel(g.NVLINK_LINKS, GPU), "links " + _GPU_WHO),
                ],
                min_value=0.0,
            ),
        ],
    )


_PER_LINK = "Needs serve --nvlink-per-link (no data without it)."


def _nvlink_per_link() -> Row:
    """Collapsed: the per-link families exist only with serve --nvlink-per-link."""
    return Row(
        "NVLink per link (serve --nvlink-per-link)",
        [
            timeseries_panel(
                "NVLink throughput per link",
                describe(g.NVLINK_LINK_DATA_BYTES, _PER_LINK),
                "Bps",
                [
                    Q(
                        rate(g.NVLINK_LINK_DATA_BYTES, RATE_INTERVAL, GPU),
                        "link {{link}} {{direction}} " + _GPU_WHO,
                    )
                ],
                min_value=0.0,
            ),
            timeseries_panel(
                "NVLink errors per link",
                describe(g.NVLINK_LINK_ERRORS, _PER_LINK),
                "short",
                [
                    Q(
                        increase(g.NVLINK_LINK_ERRORS, RATE_INTERVAL, GPU),
                        "link {{link}} {{error}} " + _GPU_WHO,
                    )
                ],
                steps=_BAD,
                axis_label="errors",
                min_value=0.0,
            ),
        ],
        collapsed=True,
    )


_MIG_WHO = "{{mig_profile}} GI {{gpu_instance_id}} " + _GPU_WHO
_ONLY_MIG = "Only MIG-enabled Hopper+ GPUs have these series (no data otherwise)."


def _mig_instances() -> Row:
    """Collapsed: GPM per MIG instance exists only on MIG-enabled GPUs."""
    return Row(
        "MIG instances",
        [
            timeseries_panel(
                "MIG instance SM and tensor active",
                f"{describe(m.MIG_SM_ACTIVE)} {describe(m.MIG_TENSOR_ACTIVE, _ONLY_MIG)}",
                "percentunit",
                [
                    Q(sel(m.MIG_SM_ACTIVE, GPU), "SM " + _MIG_WHO),
                    Q(sel(m.MIG_TENSOR_ACTIVE, GPU), "tensor " + _MIG_WHO),
                ],
                min_value=0.0,
                max_value=1.0,
            ),
            timeseries_panel(
                "MIG instance DRAM and graphics active",
                f"{describe(m.MIG_DRAM_ACTIVE)} {describe(m.MIG_GRAPHICS_ACTIVE, _ONLY_MIG)}",
                "percentunit",
                [
                    Q(sel(m.MIG_DRAM_ACTIVE, GPU), "DRAM " + _MIG_WHO),
                    Q(sel(m.MIG_GRAPHICS_ACTIVE, GPU), "graphics " + _MIG_WHO),
                ],
                min_value=0.0,
                max_value=1.0,
            ),
        ],
        collapsed=True,
    )


def _infiniband() -> Row:
    return Row(
        "InfiniBand / RoCE",
        [
            timeseries_panel(
                "Throughput per port",
                f"{describe(n.IB_DATA_BYTES)} {describe(n.IB_RATE)}",
                "Bps",
                [
                    Q(rate(n.IB_DATA_BYTES, RATE_INTERVAL, NODE), "{{direction}} " + _PORT_WHO),
                    Q(sel(n.IB_RATE, NODE), "line rate " + _PORT_WHO),
                ],
                min_value=0.0,
                width=8,
            ),
            timeseries_panel(
                "Congestion",
                f"{describe(n.IB_XMIT_WAIT)} {describe(n.IB_CONGESTION)}",
                "short",
                [
                    Q(rate(n.IB_XMIT_WAIT, RATE_INTERVAL, NODE), "xmit wait " + _PORT_WHO),
                    Q(rate(n.IB_CONGESTION, RATE_INTERVAL, NODE), "{{event}} " + _PORT_WHO),
                ],
                axis_label="per second",
                min_value=0.0,
                width=8,
            ),
            timeseries_panel(
                "Port errors",
                describe(n.IB_ERRORS),
                "short",
                [Q(increase(n.IB_ERRORS, RATE_INTERVAL, NODE), "{{error}} " + _PORT_WHO)],
                steps=_BAD,
                axis_label="errors",
                min_value=0.0,
                width=8,
            ),
        ],
    )


def _errors() -> Row:
    def errors(title: str, spec: MetricSpec, legend: str, matchers: str = GPU) -> timeseries.Panel:
        return timeseries_panel(
            title,
            describe(spec, "Increase per panel interval."),
            "short",
            [Q(increase(spec, RATE_INTERVAL, matchers), legend + " " + _GPU_WHO)],
            steps=_BAD,
            axis_label="errors",
            min_value=0.0,
            width=6,
        )

    return Row(
        "Hardware errors",
        [
            errors(
                "ECC errors (volatile)", g.GPU_ECC_ERRORS, "{{type}}", f'{GPU}, scope="volatile"'
            ),
            errors("XID errors", g.GPU_XID_ERRORS, "XID {{xid}}"),
            timeseries_panel(
                "NVLink errors",
                describe(g.NVLINK_ERRORS, describe(g.NVLINK_DL_ERRORS, "Increase per interval.")),
                "short",
                [
                    Q(increase(g.NVLINK_ERRORS, RATE_INTERVAL, GPU), "{{error}} " + _GPU_WHO),
                    Q(increase(g.NVLINK_DL_ERRORS, RATE_INTERVAL, GPU), "dl {{error}} " + _GPU_WHO),
                ],
                steps=_BAD,
                axis_label="errors",
                min_value=0.0,
                width=6,
            ),
            timeseries_panel(
                "Row remapping",
                " ".join(
                    describe(spec)
                    for spec in (
                        g.GPU_REMAPPED_ROWS,
                        g.GPU_ROW_REMAP_PENDING,
                        g.GPU_ROW_REMAP_FAILED,
                    )
                ),
                "short",
                [
                    Q(sel(g.GPU_REMAPPED_ROWS, GPU), "remapped {{cause}} " + _GPU_WHO),
                    Q(sel(g.GPU_ROW_REMAP_PENDING, GPU), "pending " + _GPU_WHO),
                    Q(sel(g.GPU_ROW_REMAP_FAILED, GPU), "failed " + _GPU_WHO),
                ],
                steps=_BAD,
                min_value=0.0,
                width=6,
            ),
        ],
    )


def node_dashboard() -> db.Dashboard:
    return build_dashboard(
        TITLE,
        ANSWERS,
        [datasource_variable(), *fleet_variables(), *gpu_variables()],
        [
            _overview(),
            _memory_power(),
            _clocks(),
            _interconnect(),
            _nvlink_per_link(),
            _mig_instances(),
            _infiniband(),
            _errors(),
        ],
    )
