"""Info-style families relayed label by label (what an inference gateway's endpoint picker
reads): `gpumetrics_engine_cache_config_info{block_size,num_gpu_blocks,cache_dtype}` and
`gpumetrics_engine_lora_adapters_info{max_lora,running_lora_adapters,waiting_lora_adapters}`.

Several engine series, one catalog family. With data-parallel ranks vLLM writes one
`cache_config_info` series per rank (`engine="0"`, `engine="1"`), each describing that rank's
own pool. The rank label is not kept, so the family carries one series per distinct label set:
ranks with the same layout collapse into one series (value 1), ranks with different layouts
stay apart. `num_gpu_blocks` is therefore one pool's blocks, as the engine writes it (what a
gateway's prefix-cache scorer sizes per server); the engine's total capacity is
`gpumetrics_engine_kv_cache_capacity_blocks` (the pools summed). `lora_requests_info` keeps
every label set vLLM left on its page (each with the Unix time it was last current); series
with equal labels keep the latest time (`apply.py` aggregates info families by max).

SGLang: older pages carry `sglang:cache_config_info{page_size,num_pages}`; current ones the
`sglang:page_size` and `sglang:num_pages` gauges instead, paired here series by series (same
labels). SGLang reports no KV dtype, so `cache_dtype` is "".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ...catalog import MetricSpec
from ...samples import Labels
from .page import Exposition, label_number

__all__ = ["InfoFromGauges", "InfoRule", "Sink", "apply_info", "apply_info_from_gauges"]


@dataclass(frozen=True, slots=True)
class InfoRule:
    """Series named `name` feed the info family `spec`; `labels` pairs each catalog label
    with the engine label it is read from. `numeric` catalog labels must hold a number
    (`num_gpu_blocks="None"`: not sized yet, the series is skipped) and are written as
    integers where they are whole. `value` is the catalog value (1 for a config info), or
    None to pass the engine's value through (lora's Unix time)."""

    spec: MetricSpec
    name: str
    labels: tuple[tuple[str, str], ...]
    numeric: tuple[str, ...] = ()
    value: float | None = 1.0


@dataclass(frozen=True, slots=True)
class InfoFromGauges:
    """A config info built from two gauges with equal labels (`sglang:page_size` and
    `sglang:num_pages`): `spec`'s label `size_label` from `size`, `count_label` from
    `count`, every other catalog label (beyond engine and model) "" ; value 1."""

    spec: MetricSpec
    size: str
    count: str
    size_label: str
    count_label: str


class Sink(Protocol):
    """Where catalog values go (`apply._Builder`), and how engine labels become a key."""

    def add(self, spec: MetricSpec, key: Labels, value: float) -> None: ...


class KeyOf(Protocol):
    def __call__(self, spec: MetricSpec, labels: Mapping[str, str]) -> Labels: ...


def apply_info(rule: InfoRule, exposition: Exposition, key_of: KeyOf, sink: Sink) -> None:
    """One catalog value per engine series of `rule.name` whose numeric labels are numbers."""
    for sample in exposition.get(rule.name):
        labels = dict(sample.labels)
        for catalog, engine in rule.labels:
            labels[catalog] = sample.labels.get(engine, "")
        if all(_whole(labels, name) for name in rule.numeric):
            value = sample.value if rule.value is None else rule.value
            sink.add(rule.spec, key_of(rule.spec, labels), value)


def apply_info_from_gauges(
    rule: InfoFromGauges, exposition: Exposition, key_of: KeyOf, sink: Sink
) -> None:
    """Pair `size` and `count` series with equal labels; one info series per pair."""
    sizes = {frozenset(s.labels.items()): s.value for s in exposition.get(rule.size)}
    for sample in exposition.get(rule.count):
        size = sizes.get(frozenset(sample.labels.items()))
        labels = {name: "" for name in rule.spec.labels}
        labels |= sample.labels
        labels[rule.size_label] = "" if size is None else repr(size)
        labels[rule.count_label] = repr(sample.value)
        if _whole(labels, rule.size_label) and _whole(labels, rule.count_label):
            sink.add(rule.spec, key_of(rule.spec, labels), 1.0)


def _whole(labels: dict[str, str], name: str) -> bool:
    """Whether `labels[name]` is a number >= 0; rewrites a whole one as an integer ("16")."""
    number = label_number(labels.get(name))
    if number is None:
        return False
    if number.is_integer():
        labels[name] = str(int(number))
    return True
