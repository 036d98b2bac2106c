"""Apply an `EngineMap` to an `Exposition`: catalog samples with labels engine=<configured
name>, model=<the engine's model label, else the configured model>.

Aggregation. Several engine series can land on one catalog series: vLLM's data-parallel ranks
(`engine="0"`, `engine="1"`), `finished_reason` values, SGLang `category` values, two engine
series feeding one family (SGLang queried = prefill_compute + prefill_cache). Per family:

- counters, histograms, and gauges that count things (running, waiting, blocks): summed;
- `kv_cache_usage_ratio`: averaged (data-parallel ranks have pools of one size);
- block size and the batch limits: the largest (per-rank configuration, equal across ranks);
- info families (cache config, LoRA adapters): the largest, see `info.py`.

Histograms keep the engine's own buckets: re-bucketing cannot be done exactly, and Prometheus
only needs one set of `le` per series (histogram_quantile works per series). Series merged into
one add up on the bounds they all share, which is exact for cumulative buckets; `_sum` and
`_count` always add up.

Per-GPU counters (`estimated_flops_per_gpu_total`) become engine totals: the sum over series
times the declared GPUs over the number of series (one series per data-parallel rank, GPUs
split evenly across ranks). With no GPUs declared they are left out rather than guessed.

Our families win over the engine's (the gpumetrics stat-logger plugin in vLLM, or our hooks in
any engine, writing `gpumetrics_engine_*` on the engine's own page). The rule is per catalog
family: every catalog family found under its own name on the page is taken from there, and
the engine's map feeds only the families the page does not carry under our names. So each
family has exactly one origin (nothing is counted twice: `steps_total{phase="mixed"}` from
vLLM's iteration histogram never adds to the plugin's prefill/decode steps), and what only
vLLM reports (its histograms, cache config) still comes through. The engine label of our
series is the configured engine name like any other; the plugin's data-parallel rank label is
aggregated like vLLM's `engine` rank.

Where an engine reports used and total KV blocks but no ratio, the ratio is used / total.
Non-finite values (NaN, +-Inf) are treated as absent. Counters pass through raw; each scrape is
mapped on its own, so after an engine restart the (smaller) new values replace the old ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ...catalog import MetricSpec
from ...catalog import engine as e
from ...engine_config import AUTO, EngineConfig
from ...samples import Collection, HistogramValue, Labels, Sample
from .errors import INVALID_SERIES, UNKNOWN_KIND, EngineError
from .info import apply_info, apply_info_from_gauges
from .page import Exposition, label_number
from .per_engine import GPUMETRICS, MAPS, detect_kind
from .vocabulary import EngineMap, HistRule, PerBlock, PerGpu, Rule

__all__ = ["map_exposition"]

_MEAN = frozenset({e.KV_USAGE.name})
_MAX = frozenset(
    {
        e.KV_BLOCK_SIZE.name,
        e.MAX_BATCH_SEQUENCES.name,
        e.MAX_BATCH_TOKENS.name,
        e.CACHE_CONFIG_INFO.name,  # equal label sets (DP ranks, one layout): one series
        e.LORA_ADAPTERS_INFO.name,  # the latest Unix time of one label set
    }
)


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
    exposition = exposition.without_replicas(engine_map.replica_labels).only_totals(
        engine_map.total_labels
    )
    context = _Context.of(engine_map, exposition, config)
    builder = _Builder()
    if engine_map is not GPUMETRICS and exposition.has_prefix(GPUMETRICS.prefix):
        ours = replace(
            _Context.of(GPUMETRICS, exposition, config), default_model=context.default_model
        )
        _apply_map(GPUMETRICS, exposition, ours, config, builder)
        builder.lock()
    _apply_map(engine_map, exposition, context, config, builder)
    builder.derive_usage()
    samples = builder.samples()
    return Collection(
        tuple(samples + _info(samples, kind, config, context.default_model)),
        tuple(builder.errors),
    )


def _apply_map(
    engine_map: EngineMap,
    exposition: Exposition,
    context: _Context,
    config: EngineConfig,
    builder: _Builder,
) -> None:
    for rule in engine_map.rules:
        _apply_rule(rule, exposition, context, builder)
    for hist in engine_map.histograms:
        _apply_histogram(hist, exposition, context, builder)
    _apply_cache_info(engine_map, exposition, context, builder)
    for info in engine_map.infos:
        apply_info(info, exposition, context.key, builder)
    for gauges in engine_map.infos_from_gauges:
        if not builder.fed(gauges.spec):
            apply_info_from_gauges(gauges, exposition, context.key, builder)
    for per_block in engine_map.per_block:
        _apply_per_block(per_block, exposition, context, builder)
    if config.gpus:
        for per_gpu in engine_map.per_gpu:
            _apply_per_gpu(per_gpu, len(config.gpus), exposition, context, builder)


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

    __slots__ = ("_histograms", "_locked", "_specs", "_values", "errors")

    def __init__(self) -> None:
        self._specs: dict[str, MetricSpec] = {}
        self._values: dict[tuple[str, Labels], list[float]] = {}
        self._histograms: dict[tuple[str, Labels], list[HistogramValue]] = {}
        self._locked: frozenset[str] = frozenset()
        self.errors: list[str] = []

    def lock(self) -> None:
        """Families fed so far take no more values (our families win over the engine's)."""
        self._locked = frozenset(self._specs)

    def fed(self, spec: MetricSpec) -> bool:
        """Whether any series of the family has a value (or it is locked)."""
        return spec.name in self._locked or spec.name in self._specs

    def has(self, spec: MetricSpec, key: Labels) -> bool:
        return spec.name in self._locked or (spec.name, key) in self._values

    def value(self, spec: MetricSpec, key: Labels) -> float | None:
        """The aggregated value of one series so far, None when it has none."""
        values = self._values.get((spec.name, key))
        return None if values is None else _aggregate(spec.name, values)

    def add(self, spec: MetricSpec, key: Labels, value: float) -> None:
        if math.isfinite(value) and spec.name not in self._locked:
            self._specs[spec.name] = spec
            self._values.setdefault((spec.name, key), []).append(value)

    def add_histogram(self, spec: MetricSpec, key: Labels, value: HistogramValue) -> None:
        if spec.name not in self._locked:
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
            samples.append(self._specs[name].sample(_aggregate(name, values), *key))
        for (name, key), histograms in self._histograms.items():
            samples.append(self._specs[name].sample(_merge(histograms), *key))
        return samples


def _aggregate(name: str, values: list[float]) -> float:
    if name in _MEAN:
        return sum(values) / len(values)
    if name in _MAX:
        return max(values)
    return math.fsum(values)


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
    """Block size and capacity from the info series' labels, where no rule gave them."""
    info = engine_map.cache_info
    if info is None:
        return
    ranks = _ranks(exposition, engine_map.prefix, info.rank_label)
    filled = {
        (spec.name, context.key(spec, sample.labels))
        for spec in (e.KV_BLOCK_SIZE, e.KV_CAPACITY_BLOCKS)
        for sample in exposition.get(info.name)
        if builder.has(spec, context.key(spec, sample.labels))
    }
    for sample in exposition.get(info.name):
        pools = 1 if not info.rank_label or info.rank_label in sample.labels else ranks
        for spec, label, times in (
            (e.KV_BLOCK_SIZE, info.block_size_label, 1),
            (e.KV_CAPACITY_BLOCKS, info.blocks_label, pools),
        ):
            key = context.key(spec, sample.labels)
            number = label_number(sample.labels.get(label))
            if number is not None and (spec.name, key) not in filled:  # "None": not sized yet
                builder.add(spec, key, number * times)


def _ranks(exposition: Exposition, prefix: str, rank_label: str) -> int:
    """Distinct values of `rank_label` on the engine's series (at least 1)."""
    if not rank_label:
        return 1
    seen = {
        sample.labels[rank_label]
        for name, samples in exposition.by_name.items()
        if name.startswith(prefix)
        for sample in samples
        if rank_label in sample.labels
    }
    return max(len(seen), 1)


def _apply_per_block(
    per_block: PerBlock, exposition: Exposition, context: _Context, builder: _Builder
) -> None:
    """tokens / block size of the same series, where the block size is known and no rule or
    info series fed the family."""
    for source in per_block.sources:
        samples = source.samples(exposition)
        if not samples:
            continue
        filled = {
            key
            for key in (context.key(per_block.spec, s.labels) for s in samples)
            if builder.has(per_block.spec, key)
        }
        for sample in samples:
            key = context.key(per_block.spec, sample.labels)
            size = builder.value(e.KV_BLOCK_SIZE, context.key(e.KV_BLOCK_SIZE, sample.labels))
            if key not in filled and size is not None and size > 0:
                builder.add(per_block.spec, key, sample.value / size)
        return


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
