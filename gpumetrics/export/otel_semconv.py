"""The semantic conventions as gpumetrics applies them: which OTel attribute each label
becomes, and the per-metric rules (pure data and functions, no opentelemetry import).

Attributes (`attribute_key`, `attributes`), one table for every metric:

=============  =====================================  =======================================
label          attribute                              note
=============  =====================================  =======================================
gpu_uuid       hw.id                                  + hw.type="gpu", hw.vendor="nvidia"
gpu_model      hw.model
gpu            gpumetrics.gpu.index                   NVML index, or "0/mig-3"
direction      network.io.direction                   tx -> transmit, rx -> receive
error          error.type
model          gen_ai.request.model
engine         gpumetrics.engine.name
source         gpumetrics.source.name
(other)        gpumetrics.<label>                     link, port, phase, reason, ...
=============  =====================================  =======================================

Per metric, following the hardware conventions (model/hardware/*.yaml of
open-telemetry/semantic-conventions; vendored excerpts in tests/data/semconv/):

- ECC errors (`hw.errors`): `type` -> `error.type` (corrected|uncorrected). NVML counts each
  error twice, in a volatile (since the driver loaded) and an aggregate (lifetime) counter;
  summing `hw.errors` over its attributes would count every error twice, so only one scope
  per GPU and type is exported: aggregate, or volatile where a GPU reports no aggregate
  (`PREFERRED_VALUES`). The Prometheus side keeps both scopes.
- Temperature (`hw.temperature`): a sensor is its own hardware component. `hw.id` is
  "<gpu uuid>/temperature/<sensor>", `hw.parent` the GPU's uuid, `hw.type` "temperature",
  `sensor` -> `hw.sensor_location` (`COMPONENTS`).
- GPU up/down (`hw.status`, an UpDownCounter): one point per state, `hw.state`="ok" with
  the up value and `hw.state`="failed" with 1 - up (`STATE_SETS`).
- Source errors map `code` to `error.type`.

`gen_ai.*` metrics (which moved from open-telemetry/semantic-conventions to
open-telemetry/semantic-conventions-genai, model/gen-ai/metrics.yaml) also carry
`gen_ai.operation.name` = "text_completion" (an engine's step loop sees prompts, not API
shapes: a chat request reaches it as a templated completion) and `gen_ai.provider.name` = the
engine's kind from `gpumetrics_engine_info` (vllm, sglang, ...), "gpumetrics" when unknown. The
`gpumetrics.` prefix keeps our attributes out of the semantic conventions' namespaces;
`.index`/`.name` keep them off our own metric namespaces (`gpumetrics.gpu.*`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ..catalog import MetricSpec
from ..catalog import gpu as gpu_catalog
from ..catalog import health as health_catalog
from ..samples import Labels, Sample

__all__ = [
    "ATTRIBUTE_KEYS",
    "ATTRIBUTE_PREFIX",
    "ATTRIBUTE_VALUES",
    "COMPONENTS",
    "DEFAULT_PROVIDER",
    "GEN_AI_OPERATION",
    "METRIC_ATTRIBUTE_KEYS",
    "PREFERRED_VALUES",
    "STATE_SETS",
    "UP_DOWN_COUNTERS",
    "Component",
    "StateSet",
    "attribute_key",
    "attributes",
    "preferred",
]

#: Attribute for each of our Prometheus labels, whatever the metric.
ATTRIBUTE_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "gpu_uuid": "hw.id",
        "gpu_model": "hw.model",
        "gpu": "gpumetrics.gpu.index",
        "direction": "network.io.direction",
        "error": "error.type",
        "model": "gen_ai.request.model",
        "engine": "gpumetrics.engine.name",
        "source": "gpumetrics.source.name",
    }
)

#: Per-metric exceptions (keyed by the catalog's exposition name) where a convention names a
#: label differently.
METRIC_ATTRIBUTE_KEYS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        gpu_catalog.GPU_ECC_ERRORS.name: {"type": "error.type"},
        gpu_catalog.GPU_TEMPERATURE.name: {
            "sensor": "hw.sensor_location",
            "gpu_uuid": "hw.parent",
            "gpu_model": "gpumetrics.gpu.model",
        },
        health_catalog.SOURCE_ERRORS.name: {"code": "error.type"},
    }
)

#: Value translations for attributes whose conventions enumerate their values.
ATTRIBUTE_VALUES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"network.io.direction": {"tx": "transmit", "rx": "receive"}}
)

#: Namespace for labels no convention covers.
ATTRIBUTE_PREFIX = "gpumetrics."

#: `gen_ai.operation.name` on every gen_ai.* point.
GEN_AI_OPERATION = "text_completion"

#: `gen_ai.provider.name` when the snapshot does not say which engine kind serves a model.
DEFAULT_PROVIDER = "gpumetrics"

#: Semantic-convention metrics that are UpDownCounters although the catalog calls them gauges.
UP_DOWN_COUNTERS = frozenset({"hw.gpu.memory.usage", "hw.gpu.memory.limit", "hw.status"})


@dataclass(frozen=True, slots=True)
class Component:
    """A hardware component inside a GPU (a sensor): its `hw.type`, and the label whose value
    names it within its parent, so that `hw.id` = "<parent hw.id>/<hw.type>/<that value>"."""

    hw_type: str
    name_label: str


#: Metrics whose series are components of a GPU rather than the GPU itself.
COMPONENTS: Mapping[str, Component] = MappingProxyType(
    {gpu_catalog.GPU_TEMPERATURE.name: Component("temperature", "sensor")}
)

#: Metrics whose series differ in one label that counts the same events twice: (label, values
#: in order of preference); only the first value present per group of series is exported.
PREFERRED_VALUES: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType(
    {gpu_catalog.GPU_ECC_ERRORS.name: ("scope", ("aggregate", "volatile"))}
)


@dataclass(frozen=True, slots=True)
class StateSet:
    """A 0/1 gauge exported as a state set: attribute `key` = `up` with the value as is, and
    `key` = `down` with 1 - value (`hw.status` needs one point per state)."""

    key: str
    up: str
    down: str


#: Metrics exported as state sets.
STATE_SETS: Mapping[str, StateSet] = MappingProxyType(
    {gpu_catalog.GPU_UP.name: StateSet("hw.state", "ok", "failed")}
)

_GPU_CONSTANTS = (("hw.type", "gpu"), ("hw.vendor", "nvidia"))


def attribute_key(spec: MetricSpec, label: str) -> str:
    """The OTel attribute key for one of `spec`'s labels (see the module's table)."""
    override = METRIC_ATTRIBUTE_KEYS.get(spec.name, {}).get(label)
    if override is not None:
        return override
    return ATTRIBUTE_KEYS.get(label, ATTRIBUTE_PREFIX + label)


def attributes(
    spec: MetricSpec, labels: Labels, *, provider: str = DEFAULT_PROVIDER
) -> dict[str, str]:
    """The OTel attributes of one series of `spec`; `provider` is the engine's kind."""
    if len(labels) != len(spec.labels):
        raise ValueError(f"{spec.name} takes labels {spec.labels}, got {labels}")
    out: dict[str, str] = {}
    for label, value in zip(spec.labels, labels, strict=True):
        key = attribute_key(spec, label)
        out[key] = ATTRIBUTE_VALUES.get(key, {}).get(value, value)
    component = COMPONENTS.get(spec.name)
    if component is not None and "hw.parent" in out:
        name = out.get(attribute_key(spec, component.name_label), "")
        out["hw.id"] = f"{out['hw.parent']}/{component.hw_type}/{name}"
        out["hw.type"] = component.hw_type
    elif "hw.id" in out:
        for key, value in _GPU_CONSTANTS:
            out.setdefault(key, value)
    if spec.otel_name.startswith("gen_ai."):
        out["gen_ai.operation.name"] = GEN_AI_OPERATION
        out["gen_ai.provider.name"] = provider
    return out


def preferred(
    spec: MetricSpec, samples: Sequence[Sample], label: str, order: tuple[str, ...]
) -> list[Sample]:
    """Of each group of `samples` that differ only in `label`, those whose `label` is the
    first value of `order` present in the group (values outside `order` are dropped)."""
    at = spec.labels.index(label)
    rank = {value: i for i, value in enumerate(order)}
    best: dict[tuple[str, ...], int] = {}
    for sample in samples:
        key = sample.labels[:at] + sample.labels[at + 1 :]
        value_rank = rank.get(sample.labels[at])
        if value_rank is not None and value_rank < best.get(key, len(order)):
            best[key] = value_rank
    return [
        sample
        for sample in samples
        if rank.get(sample.labels[at]) == best.get(sample.labels[:at] + sample.labels[at + 1 :])
    ]
