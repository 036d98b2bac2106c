"""exporters/otel-collector/config.yaml, checked structurally.

`otelcol validate` (or `otelcol-contrib validate`) is not installable here: no collector
package exists in Debian or on PyPI. So the config is read with PyYAML and checked the way
the collector resolves it: every component a pipeline names is defined (type or type/name),
every defined component is used, the extensions in `service` exist, the OTLP receiver
listens for HTTP on 4318 (the port `gpumetrics serve --otlp-endpoint` pushes to), the
memory limiter comes first and the batch processor last, and every ${env:VAR} is named.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from .tools import EXPORTERS, load_yaml

CONFIG = EXPORTERS / "otel-collector" / "config.yaml"
KINDS = ("receivers", "processors", "exporters")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(CONFIG)
    return loaded


def test_pipelines_name_only_defined_components(config: dict[str, Any]) -> None:
    pipelines = config["service"]["pipelines"]
    assert pipelines
    for name, pipeline in pipelines.items():
        assert name.split("/")[0] == "metrics", name
        for kind in KINDS:
            assert pipeline.get(kind) or kind == "processors", f"{name}: no {kind}"
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{name}: {component} not in {kind}"


def test_every_defined_component_is_used(config: dict[str, Any]) -> None:
    pipelines = config["service"]["pipelines"].values()
    for kind in KINDS:
        used = {c for pipeline in pipelines for c in pipeline.get(kind, [])}
        assert used == set(config[kind]), kind
    assert set(config["service"]["extensions"]) == set(config["extensions"])


def test_otlp_http_in_memory_limiter_first_batch_last(config: dict[str, Any]) -> None:
    http = config["receivers"]["otlp"]["protocols"]["http"]
    assert http["endpoint"].endswith(":4318")
    assert "grpc" not in config["receivers"]["otlp"]["protocols"]
    for pipeline in config["service"]["pipelines"].values():
        assert pipeline["receivers"] == ["otlp"]
        assert pipeline["processors"][0] == "memory_limiter"
        assert pipeline["processors"][-1] == "batch"


def test_remote_write_and_labels(config: dict[str, Any]) -> None:
    remote_write = config["exporters"]["prometheusremotewrite"]
    assert remote_write["resource_to_telemetry_conversion"] == {"enabled": True}
    attributes = {a["key"]: a for a in config["processors"]["resource"]["attributes"]}
    assert set(attributes) == {"cluster", "region"}
    assert all(a["action"] == "upsert" for a in attributes.values())


def test_environment_references_are_well_formed() -> None:
    text = CONFIG.read_text()
    references = re.findall(r"\$\{([^}]*)\}", text)
    assert references, "the endpoints and labels come from the environment"
    assert all(re.fullmatch(r"env:[A-Z][A-Z0-9_]*", r) for r in references), references
