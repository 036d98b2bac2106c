"""Apply an `EngineMap` to an `Exposition`: catalog samples with labels engine=<configured
name>, model=<the engine's model label, else the configured model>.

Aggregation. Several engine series can land on one catalog series: vLLM's data-parallel ranks
(`engine="0"`, `engine="1"`), `finished_reason` values, SGLang `category` values, two engine
series feeding one family (SGLang queried = prefill_compute + prefill_cache). Per family:

- counters, histograms, and gauges that count things (running, waiting, blocks): summed;
- `kv_cache_usage_ratio`: averaged (data-parallel ranks have pools of one size);
- block size and the batch limits: the largest (per-rank configuration, equal across ranks).

Histograms keep the engine's own buckets: re-bucketing cannot be done exactly, and Prometheus
only needs one set of `le` per series (histogram_quantile works per series). Series merged into
one add up on the bounds they all share, which is exact for cumulative buckets; `_sum` and
`_count` always add up.

Per-GPU counters (`estimated_flops_per_gpu_total`) become engine totals: the sum over series
times the declared GPUs over the number of series (one series per data-parallel rank, GPUs
split evenly across ranks). With no GPUs declared they are left out rather than guessed.

Where an engine reports used and total KV blocks but no ratio, the ratio is used / total.
Non-finite values (NaN, +-Inf) are treated as absent. Counters pass through raw; each scrape is
mapped on its own, so after an engine restart the (smaller) new values replace the old ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ...catalog import MetricSpec
from ...catalog import engine as e
from ...engine_config import AUTO, EngineConfig
from ...samples import Collection, HistogramValue, Labels, Sample
from .errors import INVALID_SERIES, UNKNOWN_KIND, EngineError
from .page import Exposition, label_number
from .per_engine import MAPS, detect_kind
from .vocabulary import EngineMap, HistRule, PerGpu, Rule

__all__ = ["map_exposition"]

_MEAN = frozenset({e.KV_USAGE.name})
_MAX = frozenset({e.KV_BLOCK_SIZE.name, e.MAX_BATCH_SEQUENCES.name, e.MAX_BATCH_TOKENS.name})


def map_exposition(exposition: Exposition, config: EngineConfig) -> Collection:
    """Catalog samples (plus engine and GPU info) for one scrape of the engine `config`."""
    kind = config.kind if config.kind != AUTO else detect_kind(exposition)
    if kind is None:
        raise EngineError(
            UNKNOWN_KIND,
            f"{config.url}: no vllm:, sglang:, nv_trt_llm_ or gpumetrics_engine_ series; "
            "set kind in the engine's config",
        )
    engine_map = MAPS[kind]
    exposition = exposition.without_replicas(engine_map.replica_labels)
    context = _Context.of(engine_map, exposition, config)
    builder = _Builder()
    for rule in engine_map.rules:
        _apply_rule(rule, exposition, context, builder)
    for hist in engine_map.histograms:
        _apply_histogram(hist, exposition, context, builder)
    _apply_cache_info(engine_map, exposition, context, builder)
    if config.gpus:
        for per_gpu in engine_map.per_gpu:
            _apply_per_gpu(per_gpu, len(config.gpus), exposition, context, builder)
    builder.derive_usage()
    samples = builder.samples()
    return Collection(
        tuple(samples + _info(samples, kind, config, context.default_model)),
        tuple(builder.errors),
    )


def _info(samples: list[Sample], kind: str, config: EngineConfig, default: str) -> list[Sample]:
    """Engine info per model seen (or the default model), and GPU info per model and GPU."""
    models = sorted({sample.labels[1] for sample in samples}) or [default]
    info = [e.ENGINE_INFO.sample(1.0, config.name, model, kind) for model in models]
    info += [
        e.ENGINE_GPU_INFO.sample(1.0, config.name, model, gpu.index, gpu.uuid)
        for model in models
        for gpu in config.gpu_refs
    ]
    return info


@dataclass(frozen=True, slots=True)
class _Context:
    """How engine labels become catalog label values, for one scrape."""

    engine: str
    engine_map: EngineMap
    configured: str | None
    default_model: str

    @classmethod
    def of(cls, engine_map: EngineMap, exposition: Exposition, config: EngineConfig) -> _Context:
        """`default_model` labels series without a model label (vLLM's cache_config_info) and
        the info series of an engine with no series: the one model the engine's series name
        (so such series join the others), else the configured model, else ""."""
        seen = {
            sample.labels[label]
            for name, samples in exposition.by_name.items()
            if name.startswith(engine_map.prefix)
            for sample in samples
            for label in engine_map.model_labels[:1]
            if sample.labels.get(label)
        }
        default = seen.pop() if len(seen) == 1 else (config.model or "")
        if engine_map.configured_model_first and config.model:
            default = config.model
        return cls(config.name, engine_map, config.model, default)

    def model_of(self, labels: Mapping[str, str]) -> str:
        if self.engine_map.configured_model_first and self.configured:
            return self.configured
        for label in self.engine_map.model_labels:
            value = labels.get(label)
            if value:
                return value
        return self.default_model

    def key(
        self, spec: MetricSpec, labels: Mapping[str, str], fixed: tuple[tuple[str, str], ...] = ()
    ) -> Labels:
        values: list[str] = []
        for name in spec.labels:
            if name == "engine":
                values.append(self.engine)
            elif name == "model":
                values.append(self.model_of(labels))
            else:
                values.append(dict(fixed).get(name, labels.get(name, "")))
        return tuple(values)


class _Builder:
    """Values collected per catalog series, aggregated by `samples()`."""

    __slots__ = ("_histograms", "_specs", "_values", "errors")

    def __init__(self) -> None:
        self._specs: dict[str, MetricSpec] = {}
        self._values: dict[tuple[str, Labels], list[float]] = {}
        self._histograms: dict[tuple[str, Labels], list[HistogramValue]] = {}
        self.errors: list[str] = []

    def add(self, spec: MetricSpec, key: Labels, value: float) -> None:
        if math.isfinite(value):
            self._specs[spec.name] = spec
            self._values.setdefault((spec.name, key), []).append(value)

    def add_histogram(self, spec: MetricSpec, key: Labels, value: HistogramValue) -> None:
        self._specs[spec.name] = spec
        self._histograms.setdefault((spec.name, key), []).append(value)

    def derive_usage(self) -> None:
        """kv usage = used / capacity blocks where the engine gave blocks but no ratio."""
        for (name, key), capacity in list(self._values.items()):
            used = self._values.get((e.KV_USED_BLOCKS.name, key))
            if name != e.KV_CAPACITY_BLOCKS.name or used is None or sum(capacity) <= 0:
                continue
            if (e.KV_USAGE.name, key) not in self._values:
                self.add(e.KV_USAGE, key, sum(used) / sum(capacity))

    def samples(self) -> list[Sample]:
        samples: list[Sample] = []
        for (name, key), values in self._values.items():
            if name in _MEAN:
                value = sum(values) / len(values)
            elif name in _MAX:
                value = max(values)
            else:
                value = math.fsum(values)
            samples.append(self._specs[name].sample(float(value), *key))
        for (name, key), histograms in self._histograms.items():
            samples.append(self._specs[name].sample(_merge(histograms), *key))
        return samples


def _apply_rule(rule: Rule, exposition: Exposition, context: _Context, builder: _Builder) -> None:
    for source in rule.sources:
        samples = source.samples(exposition)
        if samples:
            for sample in samples:
                builder.add(
                    rule.spec, context.key(rule.spec, sample.labels, rule.fixed), sample.value
                )
            return


def _apply_cache_info(
    engine_map: EngineMap, exposition: Exposition, context: _Context, builder: _Builder
) -> None:
    info = engine_map.cache_info
    if info is None:
        return
    for sample in exposition.get(info.name):
        for spec, label in (
            (e.KV_BLOCK_SIZE, info.block_size_label),
            (e.KV_CAPACITY_BLOCKS, info.blocks_label),
        ):
            number = label_number(sample.labels.get(label))
            if number is not None:  # vLLM writes "None" before the cache is sized
                builder.add(spec, context.key(spec, sample.labels), number)


def _apply_histogram(
    hist: HistRule, exposition: Exposition, context: _Context, builder: _Builder
) -> None:
    base = next((b for b in hist.bases if _has_histogram(exposition, b)), None)
    if base is None:
        return
    for labels, value in exposition.histograms(base):
        if value is None:
            builder.errors.append(INVALID_SERIES)
        else:
            builder.add_histogram(hist.spec, context.key(hist.spec, labels), value)


def _apply_per_gpu(
    per_gpu: PerGpu, gpus: int, exposition: Exposition, context: _Context, builder: _Builder
) -> None:
    """Engine total = sum over series x GPUs / series (GPUs split evenly across DP ranks)."""
    series = [s for s in exposition.get(per_gpu.name) if math.isfinite(s.value)]
    for sample in series:
        value = sample.value * gpus / len(series)
        builder.add(per_gpu.spec, context.key(per_gpu.spec, sample.labels), value)


def _has_histogram(exposition: Exposition, base: str) -> bool:
    return any(exposition.get(base + suffix) for suffix in ("_bucket", "_count", "_sum"))


def _merge(histograms: list[HistogramValue]) -> HistogramValue:
    """One histogram from several: counts add up on the bounds all of them have."""
    if len(histograms) == 1:
        return histograms[0]
    shared = set(histograms[0].bounds).intersection(*(h.bounds for h in histograms[1:]))
    bounds = tuple(sorted(shared))
    counts = tuple(
        math.fsum(h.counts[h.bounds.index(bound)] for h in histograms) for bound in bounds
    )
    return HistogramValue(
        bounds,
        counts,
        math.fsum(h.sum for h in histograms),
        math.fsum(h.count for h in histograms),
    )
