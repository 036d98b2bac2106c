"""The catalog's OTel names, instruments, units and attributes against the semantic conventions.

The conventions are read from the upstream YAML models (excerpts vendored under
tests/data/semconv/, upstream paths and commits in its README): hardware from
open-telemetry/semantic-conventions, GenAI from open-telemetry/semantic-conventions-genai
(where the GenAI conventions moved). Every catalog entry exported over OTLP either is a metric
those models define, with their instrument and unit and every attribute they require on each
point, or lives in our own `gpumetrics.*` namespace; every `hw.*` / `gen_ai.*` attribute we
set is one their registries define, with a value from the enum where the registry has one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpumetrics import catalog
from gpumetrics.catalog import MetricSpec, MetricType
from gpumetrics.export.otel_map import Frame, InstrumentKind, exportable, instrument_kind
from gpumetrics.samples import HistogramValue, Snapshot

SEMCONV = Path(__file__).resolve().parent.parent / "data" / "semconv"
G = catalog.gpu

INSTRUMENTS = {
    "counter": InstrumentKind.COUNTER,
    "gauge": InstrumentKind.GAUGE,
    "updowncounter": InstrumentKind.UP_DOWN_COUNTER,
    "histogram": InstrumentKind.HISTOGRAM,
}

#: Realistic label values (the enum-like ones as the sources write them).
LABEL_VALUES = {
    "gpu": "0",
    "gpu_uuid": "GPU-5d3c0a4e-0000-4000-8000-000000000001",
    "gpu_model": "NVIDIA H200",
    "type": "uncorrected",
    "scope": "aggregate",
    "sensor": "gpu",
    "direction": "rx",
    "engine": "vllm-0",
    "model": "llama",
}


@dataclass(frozen=True, slots=True)
class Convention:
    """One metric of the models: instrument, unit, and its attributes by requirement level."""

    instrument: str
    unit: str
    required: frozenset[str]
    allowed: frozenset[str]


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _models() -> Iterator[dict[str, Any]]:
    for path in sorted(SEMCONV.glob("*/*.yaml")):
        yield _load(path)


def _groups() -> Groups:
    return {
        group["id"]: group["attributes"]
        for model in _models()
        for group in model.get("attribute_groups", ())
    }


Groups = dict[str, list[dict[str, Any]]]


def _resolve(entries: list[dict[str, Any]], groups: Groups) -> dict[str, Any]:
    """attribute -> requirement level, expanding ref_groups (later entries win)."""
    out: dict[str, Any] = {}
    for entry in entries:
        if "ref_group" in entry:
            out.update(_resolve(groups[entry["ref_group"]], groups))
        else:
            out[entry["ref"]] = entry.get("requirement_level", "recommended")
    return out


def _conventions() -> dict[str, Convention]:
    groups = _groups()
    out: dict[str, Convention] = {}
    for model in _models():
        for metric in model.get("metrics", ()):
            levels = _resolve(metric.get("attributes", []), groups)
            out[metric["name"]] = Convention(
                metric["instrument"],
                metric["unit"],
                frozenset(k for k, level in levels.items() if level == "required"),
                frozenset(levels),
            )
    return out


def _registry() -> dict[str, frozenset[str] | None]:
    """attribute -> its enum values (None: any value) from the registries."""
    out: dict[str, frozenset[str] | None] = {}
    for model in _models():
        for group in model.get("groups", ()):
            for attribute in group.get("attributes", ()):
                out[attribute["id"]] = _members(attribute.get("type"))
        for attribute in model.get("attributes", ()):
            out[attribute["key"]] = _members(attribute.get("type"))
    return out


def _members(kind: object) -> frozenset[str] | None:
    if isinstance(kind, dict) and "members" in kind:
        return frozenset(str(m["value"]) for m in kind["members"])
    return None


CONVENTIONS = _conventions()
REGISTRY = _registry()


def _one_series_each(spec: MetricSpec) -> Frame:
    labels = tuple(LABEL_VALUES.get(label, f"{label}-0") for label in spec.labels)
    value: float | HistogramValue = 1.0
    if spec.type is MetricType.HISTOGRAM:
        value = HistogramValue(spec.buckets, (1.0,) * len(spec.buckets), 0.5, 1.0)
    info = catalog.engine.ENGINE_INFO.sample(1, "vllm-0", "llama", "vllm")
    return Frame.of(Snapshot(1.0, (spec.sample(value, *labels), info)))


def test_the_vendored_models_were_read() -> None:
    assert {"hw.errors", "hw.status", "hw.temperature", "hw.gpu.io"} <= CONVENTIONS.keys()
    assert "gen_ai.server.time_to_first_token" in CONVENTIONS
    assert CONVENTIONS["hw.errors"].required >= {"hw.id", "hw.type"}
    assert CONVENTIONS["gen_ai.server.request.duration"].required >= {
        "gen_ai.operation.name",
        "gen_ai.provider.name",
    }
    assert "failed" in (REGISTRY["hw.state"] or ())


@pytest.mark.parametrize("spec", exportable(catalog.ALL), ids=lambda s: s.name)
def test_semconv_names_match_their_conventions_and_others_are_ours(spec: MetricSpec) -> None:
    convention = CONVENTIONS.get(spec.otel_name)
    if convention is None:
        assert spec.otel_name.startswith("gpumetrics."), f"{spec.otel_name} is in no convention"
        return
    assert INSTRUMENTS[convention.instrument] is instrument_kind(spec)
    assert convention.unit == spec.otel_unit
    points = list(_one_series_each(spec).series(spec))
    assert points
    for point in points:
        missing = convention.required - point.attributes.keys()
        assert not missing, f"{spec.otel_name} lacks required {sorted(missing)}"


@pytest.mark.parametrize("spec", exportable(catalog.ALL), ids=lambda s: s.name)
def test_convention_namespaced_attributes_are_registered(spec: MetricSpec) -> None:
    for point in _one_series_each(spec).series(spec):
        for key, value in point.attributes.items():
            if not key.startswith(("hw.", "gen_ai.")):
                continue
            assert key in REGISTRY, f"{spec.otel_name}: {key} is not in the registry"
            members = REGISTRY[key]
            assert members is None or value in members, f"{key}={value!r} not in {members}"


def test_ecc_errors_are_counted_once() -> None:
    uuid, model = LABEL_VALUES["gpu_uuid"], LABEL_VALUES["gpu_model"]
    samples = []
    for gpu, scopes in (("0", ("volatile", "aggregate")), ("1", ("volatile",))):
        for kind, base in (("corrected", 10.0), ("uncorrected", 1.0)):
            for scope in scopes:
                value = base * (3 if scope == "aggregate" else 1) + int(gpu)
                samples.append(G.GPU_ECC_ERRORS.sample(value, gpu, uuid + gpu, model, kind, scope))
    points = list(Frame.of(Snapshot(1.0, tuple(samples))).series(G.GPU_ECC_ERRORS))
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for point in points:
        assert not isinstance(point.value, HistogramValue)
        totals[(point.attributes["hw.id"], point.attributes["error.type"])] += point.value
    # GPU 0 reports both scopes: the aggregate count (30, 3), once. GPU 1 only volatile (11, 2).
    assert dict(totals) == {
        (uuid + "0", "corrected"): 30.0,
        (uuid + "0", "uncorrected"): 3.0,
        (uuid + "1", "corrected"): 11.0,
        (uuid + "1", "uncorrected"): 2.0,
    }


def test_temperature_sensors_are_components_of_their_gpu() -> None:
    uuid, model = LABEL_VALUES["gpu_uuid"], LABEL_VALUES["gpu_model"]
    samples = tuple(
        G.GPU_TEMPERATURE.sample(t, "0", uuid, model, sensor)
        for sensor, t in (("gpu", 41.0), ("memory", 48.0))
    )
    points = list(Frame.of(Snapshot(1.0, samples)).series(G.GPU_TEMPERATURE))
    by_location = {p.attributes["hw.sensor_location"]: p.attributes for p in points}
    assert by_location["gpu"]["hw.id"] == f"{uuid}/temperature/gpu"
    assert by_location["memory"]["hw.id"] == f"{uuid}/temperature/memory"
    for attrs in by_location.values():
        assert attrs["hw.parent"] == uuid
        assert attrs["hw.type"] == "temperature"
        assert "hw.model" not in attrs  # the GPU's model is not the sensor's


@pytest.mark.parametrize(("up", "ok", "failed"), [(1.0, 1.0, 0.0), (0.0, 0.0, 1.0)])
def test_gpu_up_is_a_status_state_set(up: float, ok: float, failed: float) -> None:
    uuid, model = LABEL_VALUES["gpu_uuid"], LABEL_VALUES["gpu_model"]
    frame = Frame.of(Snapshot(1.0, (G.GPU_UP.sample(up, "0", uuid, model),)))
    points = {p.attributes["hw.state"]: p for p in frame.series(G.GPU_UP)}
    assert {state: p.value for state, p in points.items()} == {"ok": ok, "failed": failed}
    assert all(p.attributes["hw.type"] == "gpu" for p in points.values())
    assert instrument_kind(G.GPU_UP) is InstrumentKind.UP_DOWN_COUNTER
