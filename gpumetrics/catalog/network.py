"""InfiniBand / RoCE port families (source: sysfs /sys/class/infiniband)."""

from __future__ import annotations

from .spec import Group, MetricType, Source, metric

G, C = MetricType.GAUGE, MetricType.COUNTER
IB = Source.INFINIBAND

#: Labels on every per-port series.
PORT_LABELS = ("ib_device", "port")

IB_PORT_INFO = metric(
    "gpumetrics_ib_port_info",
    MetricType.INFO,
    "Static facts about an IB/RoCE port; value is always 1 (ibstat).",
    (*PORT_LABELS, "link_layer"),
    source=IB,
    group=Group.INFINIBAND,
)
IB_DATA_BYTES = metric(
    "gpumetrics_ib_port_data_bytes_total",
    C,
    "Data bytes by direction tx|rx: port_{xmit,rcv}_data (4-byte words) x 4, never x width.",
    (*PORT_LABELS, "direction"),
    source=IB,
    group=Group.INFINIBAND,
)
IB_PACKETS = metric(
    "gpumetrics_ib_port_packets_total",
    C,
    "Packets by direction tx|rx: port_{xmit,rcv}_packets.",
    (*PORT_LABELS, "direction"),
    source=IB,
    group=Group.INFINIBAND,
)
IB_XMIT_WAIT = metric(
    "gpumetrics_ib_port_xmit_wait_total",
    C,
    "Ticks the port had data to send but no credits (port_xmit_wait): fabric congestion.",
    PORT_LABELS,
    source=IB,
    group=Group.INFINIBAND,
)
IB_ERRORS = metric(
    "gpumetrics_ib_port_errors_total",
    C,
    "Port error counters by error (symbol_error, port_rcv_errors, link_downed, "
    "link_error_recovery, port_xmit_discards, ...).",
    (*PORT_LABELS, "error"),
    source=IB,
    group=Group.INFINIBAND,
)
IB_RATE = metric(
    "gpumetrics_ib_port_rate_bytes_per_second",
    G,
    "Negotiated line rate per direction (`rate`: 400 Gb/sec -> 5e10 bytes/s).",
    PORT_LABELS,
    source=IB,
    group=Group.INFINIBAND,
)
IB_STATE = metric(
    "gpumetrics_ib_port_active",
    G,
    "1 when the port state is ACTIVE and its physical state LinkUp (ibstat State).",
    PORT_LABELS,
    source=IB,
    group=Group.INFINIBAND,
)
IB_CONGESTION = metric(
    "gpumetrics_ib_port_congestion_events_total",
    C,
    "RoCE congestion counters from hw_counters/ by event np_cnp_sent|rp_cnp_handled|"
    "np_ecn_marked_roce_packets.",
    (*PORT_LABELS, "event"),
    source=IB,
    group=Group.INFINIBAND,
)

ALL = (
    IB_PORT_INFO,
    IB_DATA_BYTES,
    IB_PACKETS,
    IB_XMIT_WAIT,
    IB_ERRORS,
    IB_RATE,
    IB_STATE,
    IB_CONGESTION,
)
