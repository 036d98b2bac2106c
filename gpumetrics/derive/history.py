"""What the derived gauges need from each source, kept over a window (pure: times passed in).

`SourceHistory.observe(t, samples)` takes one sampling cycle of one source (a complete view of
that source, as the Sampler gets it) and keeps:

- for each counter quantity the gauges use, a `Window` of its reset-adjusted running total
  (`CounterTotal` per raw series, summed where the recording rules sum rates: steps over
  phases, NVLink bytes over links and directions);
- a `Window` of each gauge that the rules average over time (KV-cache usage);
- the latest value of the configuration and peak gauges the rules divide by (max_num_seqs,
  max_num_batched_tokens, per-GPU peaks, IB line rate), and which GPUs each engine runs on.

A quantity missing from a cycle is forgotten with its window: a series that is gone yields no
gauge (stale numbers mislead), and memory stays bounded by what the source currently reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..catalog import engine as e
from ..catalog import gpu as g
from ..catalog import network as n
from ..samples import HistogramValue, Labels, Sample
from .window import CounterTotal, Window

__all__ = ["Quantity", "SourceHistory"]

#: (quantity name, entity label values): one input of the formulas. Entities are (engine,
#: model), (gpu, gpu_uuid, gpu_model) or (ib_device, port[, direction]).
Quantity = tuple[str, Labels]

_Route = Callable[[Labels], tuple[Quantity, ...]]


def _engine(name: str) -> _Route:
    return lambda labels: ((name, labels[:2]),)


def _tokens(labels: Labels) -> tuple[Quantity, ...]:
    return (("tokens", labels[:2]), (f"tokens:{labels[2]}", labels[:2]))


#: Counters: catalog name -> the quantities a raw series adds its reset-adjusted total to.
COUNTERS: dict[str, _Route] = {
    e.PREFIX_QUERIED.name: _engine("queried"),
    e.PREFIX_HIT.name: _engine("hit"),
    e.RECOMPUTED_FLOPS.name: _engine("recomputed_flops"),
    e.EXTERNAL_PREFIX_QUERIED.name: _engine("external_queried"),
    e.EXTERNAL_PREFIX_HIT.name: _engine("external_hit"),
    e.SPEC_DRAFT_TOKENS.name: _engine("draft_tokens"),
    e.SPEC_ACCEPTED_TOKENS.name: _engine("accepted_tokens"),
    e.FLOPS.name: _engine("flops"),
    e.READ_BYTES.name: _engine("read"),
    e.WRITE_BYTES.name: _engine("write"),
    e.STEP_SEQUENCES.name: _engine("sequences"),
    e.STEPS.name: _engine("steps"),  # summed over phases
    e.STEP_TOKENS.name: _tokens,  # summed, and per phase
    g.NVLINK_DATA_BYTES.name: lambda labels: (("nvlink", labels[:3]),),  # over directions
    n.IB_DATA_BYTES.name: lambda labels: (("ib", labels),),
}

#: Gauges averaged over the window (avg_over_time): catalog name -> quantity.
AVERAGED: dict[str, _Route] = {e.KV_USAGE.name: _engine("kv_usage")}

#: Gauges taken at their latest value: catalog name -> quantity.
LATEST: dict[str, _Route] = {
    e.MAX_BATCH_SEQUENCES.name: _engine("max_sequences"),
    e.MAX_BATCH_TOKENS.name: _engine("max_tokens"),
    g.PEAK_FLOPS.name: lambda labels: ((f"peak_flops:{labels[3]}", labels[:3]),),
    g.PEAK_MEMORY_BANDWIDTH.name: lambda labels: (("peak_bandwidth", labels),),
    g.PEAK_NVLINK_BANDWIDTH.name: lambda labels: (("peak_nvlink", labels),),
    n.IB_RATE.name: lambda labels: (("ib_rate", labels),),
}


class SourceHistory:
    """One source's inputs to the derived gauges over the last `seconds` of its cycles.

    Read `windows`, `latest` and `engine_gpus` after `observe`; `engine_gpus` maps (engine,
    model) to the (gpu, gpu_uuid) pairs of its gpumetrics_engine_gpu_info series.
    """

    __slots__ = ("_totals", "engine_gpus", "latest", "seconds", "windows")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.windows: dict[Quantity, Window] = {}
        self.latest: dict[Quantity, float] = {}
        self.engine_gpus: dict[Labels, tuple[tuple[str, str], ...]] = {}
        self._totals: dict[tuple[str, Labels], CounterTotal] = {}

    def observe(self, timestamp: float, samples: Iterable[Sample]) -> None:
        """Add one cycle taken at `timestamp` (seconds); forget what it no longer reports."""
        sums: dict[Quantity, float] = {}
        averaged: dict[Quantity, float] = {}
        latest: dict[Quantity, float] = {}
        gpus: dict[Labels, list[tuple[str, str]]] = {}
        totals: dict[tuple[str, Labels], CounterTotal] = {}
        for sample in samples:
            value = sample.value
            if isinstance(value, HistogramValue):
                continue
            name, labels = sample.metric, sample.labels
            if name == e.ENGINE_GPU_INFO.name:
                gpus.setdefault(labels[:2], []).append((labels[2], labels[3]))
            elif (route := COUNTERS.get(name)) is not None:
                key = (name, labels)
                total = totals[key] = self._totals.get(key) or CounterTotal()
                running = total.update(value)
                for quantity in route(labels):
                    sums[quantity] = sums.get(quantity, 0.0) + running
            elif (route := AVERAGED.get(name)) is not None:
                for quantity in route(labels):
                    averaged[quantity] = value
            elif (route := LATEST.get(name)) is not None:
                for quantity in route(labels):
                    latest[quantity] = value
        self._totals = totals
        windows: dict[Quantity, Window] = {}
        for quantity, value in (*sums.items(), *averaged.items()):
            window = self.windows.get(quantity)
            if window is None:
                window = Window(self.seconds)
            window.add(timestamp, value)
            windows[quantity] = window
        self.windows = windows
        self.latest = latest
        self.engine_gpus = {key: tuple(pairs) for key, pairs in gpus.items()}
