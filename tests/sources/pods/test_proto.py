"""The committed PodResources stubs are what grpcio-tools makes of the vendored proto, and the
`k8s` extra asks for the runtimes those stubs demand."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from gpumetrics.sources.pods._proto import api_pb2
from gpumetrics.sources.pods._proto.generate import PROTO, STUBS, generate

ROOT = Path(__file__).resolve().parents[3]


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    fresh = generate(tmp_path)
    assert sorted(fresh) == sorted(STUBS)
    for name, text in fresh.items():
        assert PROTO.with_name(name).read_text() == text, (
            f"{name} drifted from api.proto: python -m gpumetrics.sources.pods._proto.generate"
        )


def test_the_vendored_proto_is_upstream_v1_with_its_source_named() -> None:
    text = PROTO.read_text()
    assert "kubernetes/kubelet, path pkg/apis/podresources/v1/api.proto" in text
    assert re.search(r"commit [0-9a-f]{40}", text)
    assert "gogoproto" not in text
    service = api_pb2.DESCRIPTOR.services_by_name["PodResourcesLister"]
    assert api_pb2.DESCRIPTOR.package == "v1"  # the wire path is /v1.PodResourcesLister/...
    assert {m.name for m in service.methods} == {"List", "Get", "GetAllocatableResources"}


def _floor(requirements: list[str], name: str) -> str:
    for requirement in requirements:
        if match := re.fullmatch(rf"{name}>=([\d.]+)", requirement):
            return match.group(1)
    raise AssertionError(f"no {name}>= floor in {requirements}")


def test_the_k8s_extra_floors_are_what_the_stubs_demand() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    grpc_stub = PROTO.with_name("api_pb2_grpc.py").read_text()
    generated_grpc = re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", grpc_stub)
    pb = PROTO.with_name("api_pb2.py").read_text()
    generated_pb = re.search(r"# Protobuf Python Version: ([\d.]+)", pb)
    assert generated_grpc is not None
    assert generated_pb is not None
    assert _floor(extras["k8s"], "grpcio") == generated_grpc.group(1)
    assert _floor(extras["k8s"], "protobuf") == generated_pb.group(1)
    assert f"grpcio-tools=={generated_grpc.group(1)}" in extras["dev"]
