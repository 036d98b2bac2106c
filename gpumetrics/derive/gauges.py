"""The derived gauges of `serve`: the recording rules' ratios, computed over a window from the
exporter's own counter history (DESIGN.md §3.2). Pure: timestamps come with the samples.

`DerivedGauges.observe(source, t, samples)` takes each source's sampling cycles;
`samples()` returns the gauges of `gpumetrics.catalog.derived` for the current history. The
definitions are those of gpumetrics/render/rules/recording.py, term for term (`rate` is
`window.window_rate`: reset-aware, over the samples' own span):

- hit ratio = rate(hit) / rate(queried); miss ratio = (rate(queried) − rate(hit)) /
  rate(queried); recompute share = rate(recomputed FLOPs) / rate(FLOPs); external hit ratio
  = rate(external hit) / rate(external queried); spec-decode acceptance = rate(accepted draft
  tokens) / rate(draft tokens);
- mean batch = rate(step sequences) / Σ_phase rate(steps); batch occupancy = min(mean batch /
  max_num_seqs, 1); token occupancy = min(Σ_phase rate(tokens) / Σ_phase rate(steps) /
  max_num_batched_tokens, 1); mean KV usage = the average of its samples in the window
  (avg_over_time); load score = max(batch occupancy, mean KV usage), either alone when the
  other is missing;
- traffic = rate(read) + rate(write), or rate(read) alone without a write counter;
  intensity = rate(FLOPs) / traffic; MFU(dtype) = rate(FLOPs) / Σ peak(dtype) and MBU =
  traffic / Σ peak bandwidth, both summed over the engine's GPUs (gpumetrics_engine_gpu_info
  joined to the GPU peaks by gpu_uuid; for MFU only the GPUs that have a `dtype` peak);
  compute bound(dtype) = 1 if intensity >= Σ peak(dtype) / Σ peak bandwidth, else 0;
- per GPU: each engine's FLOP/s and traffic split evenly over its GPUs and summed per GPU,
  over that GPU's peaks; NVLink = Σ_links,directions rate(data bytes) / peak NVLink;
- per IB port and direction: rate(data bytes) / line rate.

A gauge is left out when an input is missing, its window has fewer than two samples, or its
denominator is zero (the rule gives NaN or nothing there).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from ..catalog import derived as d
from ..hardware import DTYPES
from ..samples import Labels, Sample
from .efficiency import Bound, arithmetic_intensity, bound, mbu, mfu
from .history import Quantity, SourceHistory
from .load import batch_occupancy, hit_ratio, load_score, mean_batch_size, miss_ratio
from .window import Window, format_window

__all__ = ["DerivedGauges"]

_PHASES = ("prefill", "decode")
_ENGINE_QUANTITIES = frozenset(
    {"queried", "hit", "recomputed_flops", "flops", "sequences", "steps", "tokens", "kv_usage"}
    | {"external_queried", "external_hit", "draft_tokens", "accepted_tokens"}
)


class _Inputs:
    """Every source's history merged into one view (sources report disjoint series)."""

    __slots__ = ("engine_gpus", "latest", "windows")

    def __init__(self, histories: Iterable[SourceHistory]) -> None:
        self.windows: dict[Quantity, Window] = {}
        self.latest: dict[Quantity, float] = {}
        self.engine_gpus: dict[Labels, tuple[tuple[str, str], ...]] = {}
        for history in histories:
            self.windows.update(history.windows)
            self.latest.update(history.latest)
            self.engine_gpus.update(history.engine_gpus)

    def rate(self, quantity: str, key: Labels) -> float | None:
        window = self.windows.get((quantity, key))
        return None if window is None else window.rate()

    def mean(self, quantity: str, key: Labels) -> float | None:
        window = self.windows.get((quantity, key))
        return None if window is None else window.mean()

    def engines(self) -> list[Labels]:
        """(engine, model) of every engine with any input."""
        return sorted(
            {key for name, key in (*self.windows, *self.latest) if name in _ENGINE_QUANTITIES}
        )

    def keys(self, quantity: str) -> list[Labels]:
        return sorted({key for name, key in (*self.windows, *self.latest) if name == quantity})

    def gpus_by_uuid(self) -> dict[str, Labels]:
        """gpu_uuid -> (gpu, gpu_uuid, gpu_model), for the GPUs whose peaks are known."""
        return {key[1]: key for key in self.keys("peak_bandwidth")}


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _traffic(inputs: _Inputs, key: Labels) -> float | None:
    read, write = inputs.rate("read", key), inputs.rate("write", key)
    if read is None:
        return None
    return read if write is None else read + write


class DerivedGauges:
    """Windowed derived gauges over the cycles of every source (see the module docstring).

    `seconds` is the window; the `window` label carries it as a Prometheus duration ("5m").
    Not thread-safe: the Sampler calls it under its merge lock.
    """

    __slots__ = ("_histories", "_label", "_seconds")

    def __init__(self, seconds: float) -> None:
        self._label = format_window(seconds)
        self._seconds = seconds
        self._histories: dict[str, SourceHistory] = {}

    @property
    def window(self) -> str:
        """The `window` label value, e.g. "5m"."""
        return self._label

    def observe(self, source: str, timestamp: float, samples: Iterable[Sample]) -> None:
        """One sampling cycle of `source`, taken at `timestamp` (seconds)."""
        history = self._histories.get(source)
        if history is None:
            history = self._histories[source] = SourceHistory(self._seconds)
        history.observe(timestamp, samples)

    def forget(self, source: str) -> None:
        """Drop `source`'s history (it failed: its gauges go, as its samples do)."""
        self._histories.pop(source, None)

    def samples(self) -> tuple[Sample, ...]:
        """The derived gauges for the history so far."""
        inputs = _Inputs(self._histories.values())
        return (
            *self._engine(inputs),
            *self._roofline(inputs),
            *self._per_gpu(inputs),
            *self._fabric(inputs),
        )

    # --- engines --------------------------------------------------------------------------

    def _engine(self, inputs: _Inputs) -> Iterator[Sample]:
        w = self._label
        for key in inputs.engines():
            queried, hit = inputs.rate("queried", key), inputs.rate("hit", key)
            if queried is not None and hit is not None:
                if (value := hit_ratio(hit, queried)) is not None:
                    yield d.PREFIX_HIT_RATIO.sample(value, *key, w)
                if (value := miss_ratio(hit, queried)) is not None:
                    yield d.PREFIX_MISS_RATIO.sample(value, *key, w)
            share = _ratio(inputs.rate("recomputed_flops", key), inputs.rate("flops", key))
            if share is not None:
                yield d.RECOMPUTE_SHARE.sample(share, *key, w)
            for spec, numerator, denominator in (
                (d.EXTERNAL_HIT_RATIO, "external_hit", "external_queried"),
                (d.SPEC_ACCEPTANCE_RATIO, "accepted_tokens", "draft_tokens"),
            ):
                ratio = _ratio(inputs.rate(numerator, key), inputs.rate(denominator, key))
                if ratio is not None:
                    yield spec.sample(ratio, *key, w)
            steps = inputs.rate("steps", key)
            occupancy: float | None = None
            sequences = inputs.rate("sequences", key)
            mean = None if sequences is None or steps is None else mean_batch_size(sequences, steps)
            if mean is not None:
                yield d.MEAN_BATCH.sample(mean, *key, w)
                limit = inputs.latest.get(("max_sequences", key))
                if limit is not None and limit > 0:
                    occupancy = batch_occupancy(mean, limit)
                    yield d.BATCH_OCCUPANCY.sample(occupancy, *key, w)
            tokens = inputs.rate("tokens", key)
            step_tokens = (
                None if tokens is None or steps is None else mean_batch_size(tokens, steps)
            )
            token_limit = inputs.latest.get(("max_tokens", key))
            if step_tokens is not None and token_limit is not None and token_limit > 0:
                yield d.BATCH_TOKEN_OCCUPANCY.sample(
                    batch_occupancy(step_tokens, token_limit), *key, w
                )
            kv = inputs.mean("kv_usage", key)
            if kv is not None:
                yield d.KV_MEAN_USAGE.sample(kv, *key, w)
            if occupancy is not None or kv is not None:
                # Both are >= 0, so a missing one read as 0 leaves the max to the other ("or").
                yield d.LOAD_SCORE.sample(load_score(occupancy or 0.0, kv or 0.0), *key, w)
            for phase in _PHASES:
                if (rate := inputs.rate(f"tokens:{phase}", key)) is not None:
                    yield d.TOKEN_RATE.sample(rate, *key, phase, w)

    def _roofline(self, inputs: _Inputs) -> Iterator[Sample]:
        w = self._label
        by_uuid = inputs.gpus_by_uuid()
        for key in inputs.keys("flops"):
            flops, traffic = inputs.rate("flops", key), _traffic(inputs, key)
            if flops is not None:
                yield d.COMPUTE_RATE.sample(flops, *key, w)
            if traffic is not None:
                yield d.MEMORY_TRAFFIC.sample(traffic, *key, w)
            if flops is not None and traffic is not None and traffic > 0:
                yield d.INTENSITY.sample(arithmetic_intensity(flops, traffic), *key, w)
            gpus = [by_uuid[uuid] for _, uuid in inputs.engine_gpus.get(key, ()) if uuid in by_uuid]
            if not gpus:
                continue
            bandwidth = sum(inputs.latest[("peak_bandwidth", gpu)] for gpu in gpus)
            if traffic is not None and bandwidth > 0:
                yield d.MBU.sample(mbu(traffic, bandwidth), *key, w)
            for dtype, peak in _peaks(inputs.latest, gpus).items():
                if flops is None or peak <= 0:
                    continue
                yield d.MFU.sample(mfu(flops, peak), *key, dtype, w)
                if traffic is not None and traffic > 0 and bandwidth > 0:
                    roof = bound(flops, traffic, peak, bandwidth)
                    yield d.COMPUTE_BOUND.sample(
                        1.0 if roof is Bound.COMPUTE else 0.0, *key, dtype, w
                    )

    # --- GPUs and fabric ------------------------------------------------------------------

    def _per_gpu(self, inputs: _Inputs) -> Iterator[Sample]:
        w = self._label
        by_uuid = inputs.gpus_by_uuid()
        flops: dict[str, float] = {}
        traffic: dict[str, float] = {}
        for key, pairs in inputs.engine_gpus.items():
            engine_flops, engine_traffic = inputs.rate("flops", key), _traffic(inputs, key)
            for _, uuid in pairs:
                if engine_flops is not None:
                    flops[uuid] = flops.get(uuid, 0.0) + engine_flops / len(pairs)
                if engine_traffic is not None:
                    traffic[uuid] = traffic.get(uuid, 0.0) + engine_traffic / len(pairs)
        for uuid, gpu in sorted(by_uuid.items(), key=lambda item: item[1]):
            if uuid in flops:
                for dtype, peak in _peaks(inputs.latest, [gpu]).items():
                    if peak > 0:
                        yield d.GPU_MFU.sample(mfu(flops[uuid], peak), *gpu, dtype, w)
            bandwidth = inputs.latest.get(("peak_bandwidth", gpu), 0.0)
            if uuid in traffic and bandwidth > 0:
                yield d.GPU_MBU.sample(mbu(traffic[uuid], bandwidth), *gpu, w)
        for gpu in inputs.keys("nvlink"):
            value = _ratio(inputs.rate("nvlink", gpu), inputs.latest.get(("peak_nvlink", gpu)))
            if value is not None:
                yield d.NVLINK_UTILIZATION.sample(value, *gpu, w)

    def _fabric(self, inputs: _Inputs) -> Iterator[Sample]:
        w = self._label
        for port in inputs.keys("ib"):
            value = _ratio(inputs.rate("ib", port), inputs.latest.get(("ib_rate", port[:2])))
            if value is not None:
                yield d.IB_UTILIZATION.sample(value, *port, w)


def _peaks(latest: Mapping[Quantity, float], gpus: list[Labels]) -> dict[str, float]:
    """dtype -> Σ peak FLOP/s over `gpus` that have a peak for it (in DTYPES order)."""
    out: dict[str, float] = {}
    for dtype in DTYPES:
        quantities = [(f"peak_flops:{dtype}", gpu) for gpu in gpus]
        values = [latest[q] for q in quantities if q in latest]
        if values:
            out[dtype] = sum(values)
    return out
