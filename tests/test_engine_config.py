"""EngineConfig, the one engine configuration type: validation with ConfigError, URL defaults,
GPU references; the scrape bridge re-exports the same class."""

from __future__ import annotations

import dataclasses

import pytest

import gpumetrics.sources.engine as bridge
from gpumetrics.engine_config import Endpoint, EngineConfig, GpuRef
from gpumetrics.errors import ConfigError

UUID = "GPU-5d3c2a5e-8f1b-4c7e-9a3d-0b1c2d3e4f50"


def test_defaults_and_names() -> None:
    config = EngineConfig("vllm-0", "http://127.0.0.1:8000/metrics")
    assert (config.kind, config.model, config.gpus) == ("auto", None, ())
    assert (config.max_bytes, config.timeout_s) == (16 << 20, 2.0)
    assert config.source_name == "engine:vllm-0"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "other"  # type: ignore[misc]
    assert bridge.EngineConfig is EngineConfig  # one type, not a copy


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://127.0.0.1:8000", Endpoint("http", "127.0.0.1", 8000, "/metrics")),
        ("http://localhost/", Endpoint("http", "localhost", 80, "/")),
        ("https://engine.local/m?x=1", Endpoint("https", "engine.local", 443, "/m?x=1")),
        ("http://[::1]:9400/metrics", Endpoint("http", "::1", 9400, "/metrics")),
    ],
)
def test_endpoint_from_url(url: str, endpoint: Endpoint) -> None:
    assert EngineConfig("e", url).endpoint == endpoint


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("0", GpuRef("0", "")),
        ("12", GpuRef("12", "")),
        (UUID, GpuRef("", UUID)),
        (
            "MIG-0d6b1c3a-1234-5678-9abc-def012345678",
            GpuRef("", "MIG-0d6b1c3a-1234-5678-9abc-def012345678"),
        ),
        (f"3:{UUID}", GpuRef("3", UUID)),
    ],
)
def test_gpus_as_indexes_uuids_or_pairs(text: str, ref: GpuRef) -> None:
    assert EngineConfig("e", "http://h:1", gpus=(text,)).gpu_refs == (ref,)


def test_gpus_given_as_a_list_become_a_tuple() -> None:
    config = EngineConfig("e", "http://h:1", gpus=["0", "1"])  # type: ignore[arg-type]
    assert config.gpus == ("0", "1")


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"name": ""}, "name"),
        ({"name": " spaced "}, "name"),
        ({"url": "ftp://h/metrics"}, "url"),
        ({"url": "127.0.0.1:8000"}, "url"),
        ({"url": "http://:80/metrics"}, "url"),
        ({"url": "http://h:99999/metrics"}, "url"),
        ({"kind": "tgi"}, "kind"),
        ({"gpus": ("gpu0",)}, "gpus"),
        ({"gpus": ("0:1",)}, "gpus"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"timeout_s": 0.0}, "timeout_s"),
        ({"timeout_s": float("nan")}, "timeout_s"),
    ],
)
def test_bad_config_names_the_key(options: dict[str, object], key: str) -> None:
    fields: dict[str, object] = {"name": "e", "url": "http://h:1/metrics", **options}
    with pytest.raises(ConfigError) as caught:
        EngineConfig(**fields)  # type: ignore[arg-type]
    assert caught.value.key == key
