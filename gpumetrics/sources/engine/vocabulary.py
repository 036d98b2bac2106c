"""The vocabulary of a name map: which engine series feed which catalog family.

A map is data (`EngineMap`), applied by `apply.py`; the maps themselves are in `per_engine.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ...catalog import MetricSpec
from .info import InfoFromGauges, InfoRule
from .page import Exposition, RawSample

__all__ = [
    "CacheInfo",
    "EngineMap",
    "HistRule",
    "PerBlock",
    "PerGpu",
    "Rule",
    "Src",
    "rule",
    "src",
]


@dataclass(frozen=True, slots=True)
class Src:
    """Samples named `name` whose labels include every pair of `match`."""

    name: str
    match: tuple[tuple[str, str], ...] = ()

    def samples(self, exposition: Exposition) -> list[RawSample]:
        return [s for s in exposition.get(self.name) if _matches(s.labels, self.match)]


def src(name: str, **match: str) -> Src:
    """`src("sglang:realtime_tokens_total", mode="decode")`."""
    return Src(name, tuple(sorted(match.items())))


@dataclass(frozen=True, slots=True)
class Rule:
    """A gauge or counter family fed by the first of `sources` present in the exposition (new
    names before old ones); `fixed` sets catalog labels such as `phase`. Catalog labels that
    are neither `engine`, `model` nor fixed are copied from the engine's label of that name.
    Several rules may feed one family: their values add up (`mapping.Builder`)."""

    spec: MetricSpec
    sources: tuple[Src, ...]
    fixed: tuple[tuple[str, str], ...] = ()


def rule(spec: MetricSpec, *sources: Src, **fixed: str) -> Rule:
    """`rule(STEP_TOKENS, src("vllm:generation_tokens_total"), phase="decode")`."""
    return Rule(spec, sources, tuple(sorted(fixed.items())))


@dataclass(frozen=True, slots=True)
class HistRule:
    """A histogram family fed by the first histogram of `bases` present, with its own
    buckets (see `apply.py` for why they are not re-bucketed)."""

    spec: MetricSpec
    bases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """An info-style gauge whose labels carry the KV block size and block count
    (`vllm:cache_config_info{block_size,num_gpu_blocks}`). It only fills what the map's
    rules left empty. `rank_label` names the data-parallel rank label: newer vLLM writes one
    info series per rank (each rank has its own pool, so the blocks add up); an info series
    without it on a page whose other series carry n ranks describes each of the n pools."""

    name: str
    block_size_label: str
    blocks_label: str
    rank_label: str = ""


@dataclass(frozen=True, slots=True)
class PerBlock:
    """A gauge counted in tokens that feeds a family counted in blocks, divided by the
    engine's block size (`sglang:kv_used_tokens` / `sglang:page_size`); SGLang allocates whole
    pages, so the division is exact. Left out when the block size is unknown, and when a rule
    already fed the family (`sglang:num_pages` before `max_total_num_tokens / page_size`)."""

    spec: MetricSpec
    sources: tuple[Src, ...]


@dataclass(frozen=True, slots=True)
class PerGpu:
    """A per-GPU counter (`vllm:estimated_flops_per_gpu_total`) that feeds an engine-wide
    family once multiplied by the engine's GPUs (see `apply.py`)."""

    spec: MetricSpec
    name: str


@dataclass(frozen=True, slots=True)
class EngineMap:
    """Everything needed to turn one engine's exposition into catalog samples.

    `prefix` identifies the engine for kind="auto". `model_labels` are the engine's labels
    that name the served model, in preference order; with `configured_model_first` the
    configured model wins over them. `replica_labels` name ranks whose series repeat one state
    (kept once, see `Exposition.without_replicas`); `total_labels` name breakdowns whose
    total is the series with the label empty (SGLang's `priority`: the total under
    `priority=""`, each priority again under its number), so only the total is kept; other
    extra labels (vLLM's `engine` data parallel rank, `finished_reason`, ...) are aggregated
    away. `infos` relay info-style families label by label (`info.py`); `infos_from_gauges`
    build one where the engine has gauges instead, used only when `infos` fed nothing.
    """

    kind: str
    prefix: str
    model_labels: tuple[str, ...]
    rules: tuple[Rule, ...] = ()
    histograms: tuple[HistRule, ...] = ()
    cache_info: CacheInfo | None = None
    per_gpu: tuple[PerGpu, ...] = ()
    per_block: tuple[PerBlock, ...] = ()
    infos: tuple[InfoRule, ...] = ()
    infos_from_gauges: tuple[InfoFromGauges, ...] = ()
    replica_labels: tuple[str, ...] = ()
    total_labels: tuple[str, ...] = ()
    configured_model_first: bool = False


def _matches(labels: Mapping[str, str], match: tuple[tuple[str, str], ...]) -> bool:
    return all(labels.get(key) == value for key, value in match)
