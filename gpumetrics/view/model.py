"""What `gpumetrics top` shows, as data: one node's GPUs, engines and IB ports, read from
metric points (a scrape of `serve`, or a local Snapshot). No rendering here.

Every number is one of `serve`'s series: naive utilisation beside the GPM activities, and
the derived gauges (`catalog.derived`: MFU, MBU, hit ratio, ...) over their window; nothing
is computed here but sums across phases and a lookup by dtype. A value the node does not
report is None (shown as "-").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..catalog import BY_NAME
from ..catalog import derived as d
from ..catalog import engine as e
from ..catalog import gpu as g
from ..catalog import health as h
from ..catalog import network as n
from ..samples import HistogramValue, Snapshot

__all__ = ["EngineRow", "GpuRow", "NodeView", "Point", "PortRow", "build_view", "points_of"]


@dataclass(frozen=True, slots=True)
class Point:
    """One series value: sample name as on the wire, its labels, the value."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class GpuRow:
    """One GPU. Ratios are 0-1; `power_watts` in watts; memory in bytes."""

    gpu: str
    model: str
    naive_util: float | None
    sm_active: float | None
    tensor_active: float | None
    dram_active: float | None
    mfu: float | None
    mbu: float | None
    nvlink: float | None
    power_watts: float | None
    memory_used: float | None
    memory_total: float | None


@dataclass(frozen=True, slots=True)
class EngineRow:
    """One engine. Ratios are 0-1 over the derived window (KV usage: its mean there);
    `preemptions` is the total since the engine started and `waiting` the queue now;
    `tokens_per_second` sums prefill and decode tokens; `compute_bound` is 1.0
    (compute-bound), 0.0 (memory-bound) or None (unknown)."""

    engine: str
    model: str
    batch_occupancy: float | None
    kv_usage: float | None
    hit_ratio: float | None
    recompute_share: float | None
    preemptions: float | None
    waiting: float | None
    tokens_per_second: float | None
    intensity: float | None
    compute_bound: float | None
    mfu: float | None
    mbu: float | None
    load_score: float | None


@dataclass(frozen=True, slots=True)
class PortRow:
    """One InfiniBand/RoCE port: utilisation of its line rate per direction (0-1)."""

    port: str
    tx: float | None
    rx: float | None


@dataclass(frozen=True, slots=True)
class NodeView:
    """A frame of `top`: `window` is the derived gauges' window ("5m"), `dtype` the dtype
    MFU and the bound are read for; `down` names the sources whose last cycle failed
    (gpumetrics_source_up 0); `error` says why a frame has no data."""

    source: str
    dtype: str
    window: str | None
    gpus: tuple[GpuRow, ...]
    engines: tuple[EngineRow, ...]
    ports: tuple[PortRow, ...]
    down: tuple[str, ...] = ()
    error: str | None = None


def points_of(snapshot: Snapshot) -> list[Point]:
    """A Snapshot's numeric samples as points, labels named from the catalog."""
    points: list[Point] = []
    for sample in snapshot.samples:
        spec = BY_NAME.get(sample.metric)
        if spec is None or isinstance(sample.value, HistogramValue):
            continue
        points.append(
            Point(sample.metric, dict(zip(spec.labels, sample.labels, strict=True)), sample.value)
        )
    return points


class _Index:
    """Points by (name, identifying label values)."""

    def __init__(self, points: Iterable[Point]) -> None:
        self.by_name: dict[str, list[Point]] = {}
        for point in points:
            self.by_name.setdefault(point.name, []).append(point)

    def get(self, name: str, **match: str) -> float | None:
        """The value of the one series of `name` whose labels include `match`."""
        for point in self.by_name.get(name, ()):
            if all(point.labels.get(k) == v for k, v in match.items()):
                return point.value
        return None

    def total(self, name: str, **match: str) -> float | None:
        """Sum over every series of `name` whose labels include `match` (None if none)."""
        values = [
            p.value
            for p in self.by_name.get(name, ())
            if all(p.labels.get(k) == v for k, v in match.items())
        ]
        return sum(values) if values else None

    def label_sets(self, names: Iterable[str], keys: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = {
            tuple(p.labels.get(k, "") for k in keys)
            for name in names
            for p in self.by_name.get(name, ())
        }
        return sorted(found, key=lambda key: tuple(_natural(v) for v in key))


def _natural(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (1 << 30, text)


def _gpus(index: _Index, dtype: str) -> tuple[GpuRow, ...]:
    rows = []
    for gpu, model in index.label_sets((g.GPU_UP.name, g.GPU_INFO.name), ("gpu", "gpu_model")):
        if "/" in gpu:  # MIG devices: their parent GPU's row tells the story
            continue
        at = {"gpu": gpu}
        rows.append(
            GpuRow(
                gpu=gpu,
                model=model,
                naive_util=index.get(g.GPU_UTILIZATION_NAIVE.name, **at),
                sm_active=index.get(g.GPM_SM_ACTIVE.name, **at),
                tensor_active=index.get(g.GPM_TENSOR_ACTIVE.name, **at),
                dram_active=index.get(g.GPM_DRAM_ACTIVE.name, **at),
                mfu=index.get(d.GPU_MFU.name, dtype=dtype, **at),
                mbu=index.get(d.GPU_MBU.name, **at),
                nvlink=index.get(d.NVLINK_UTILIZATION.name, **at),
                power_watts=index.get(g.GPU_POWER.name, **at),
                memory_used=index.get(g.GPU_MEMORY_USED.name, **at),
                memory_total=index.get(g.GPU_MEMORY_TOTAL.name, **at),
            )
        )
    return tuple(rows)


def _engines(index: _Index, dtype: str) -> tuple[EngineRow, ...]:
    rows = []
    names = (e.ENGINE_INFO.name, e.STEPS.name, e.KV_USAGE.name)
    for engine, model in index.label_sets(names, ("engine", "model")):
        at = {"engine": engine, "model": model}
        rows.append(
            EngineRow(
                engine=engine,
                model=model,
                batch_occupancy=index.get(d.BATCH_OCCUPANCY.name, **at),
                kv_usage=index.get(d.KV_MEAN_USAGE.name, **at),
                hit_ratio=index.get(d.PREFIX_HIT_RATIO.name, **at),
                recompute_share=index.get(d.RECOMPUTE_SHARE.name, **at),
                preemptions=index.get(e.PREEMPTIONS.name, **at),
                waiting=index.get(e.WAITING_REQUESTS.name, **at),
                tokens_per_second=index.total(d.TOKEN_RATE.name, **at),
                intensity=index.get(d.INTENSITY.name, **at),
                compute_bound=index.get(d.COMPUTE_BOUND.name, dtype=dtype, **at),
                mfu=index.get(d.MFU.name, dtype=dtype, **at),
                mbu=index.get(d.MBU.name, **at),
                load_score=index.get(d.LOAD_SCORE.name, **at),
            )
        )
    return tuple(rows)


def _ports(index: _Index) -> tuple[PortRow, ...]:
    rows = []
    for device, port in index.label_sets((n.IB_STATE.name,), ("ib_device", "port")):
        at = {"ib_device": device, "port": port}
        rows.append(
            PortRow(
                port=f"{device}/{port}",
                tx=index.get(d.IB_UTILIZATION.name, direction="tx", **at),
                rx=index.get(d.IB_UTILIZATION.name, direction="rx", **at),
            )
        )
    return tuple(rows)


def build_view(points: Iterable[Point], *, source: str, dtype: str = "bf16") -> NodeView:
    """The frame for `points` (one scrape); MFU and the bound are read for `dtype`."""
    index = _Index(points)
    windows = {
        p.labels["window"]
        for spec in d.ALL
        for p in index.by_name.get(spec.name, ())
        if "window" in p.labels
    }
    return NodeView(
        source=source,
        dtype=dtype,
        window=", ".join(sorted(windows)) or None,
        gpus=_gpus(index, dtype),
        engines=_engines(index, dtype),
        ports=_ports(index),
        down=tuple(
            sorted(
                p.labels.get("source", "")
                for p in index.by_name.get(h.SOURCE_UP.name, ())
                if p.value == 0
            )
        ),
    )
