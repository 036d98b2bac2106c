"""The PodResources client against a real grpc server on a unix socket (the fake kubelet)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpumetrics.errors import UnavailableError
from gpumetrics.sources.pods.kubelet import (
    GRPC_HINT,
    KubeletClient,
    KubeletError,
    is_gpu_resource,
)
from gpumetrics.sources.pods.model import Assignment

from .conftest import Served, pod_resources, serve

GPU0 = "GPU-0f6b5b1c-6c4c-4b52-8a52-59b4e2a8f1a0"
GPU1 = "GPU-7d1e2a33-91b0-4c55-b1f3-0a9e6c2d4b11"
MIG = "MIG-3a7c1f0e-55d2-5b6e-9f10-1c2d3e4f5a6b"

PODS = [
    ("llm", "vllm-0", "engine", "nvidia.com/gpu", (GPU0, GPU1)),
    ("llm", "vllm-0", "sidecar", "example.com/nic", ("nic-0",)),
    ("batch", "embed-7", "worker", "nvidia.com/mig-1g.18gb", (MIG,)),
    # Time-slicing: two replicas of one GPU in two pods (renamed resource).
    ("dev", "nb-a", "lab", "nvidia.com/gpu.shared", (f"{GPU0}::0",)),
    ("dev", "nb-b", "lab", "nvidia.com/gpu.shared", (f"{GPU0}::1", f"{GPU0}::2")),
    ("misc", "amd", "x", "amd.com/gpu", ("card0",)),
]


@pytest.fixture
def client(fake_kubelet: Served) -> KubeletClient:
    fake_kubelet.kubelet.pods = pod_resources(PODS)
    client = KubeletClient(fake_kubelet.socket, timeout=5.0)
    yield client
    client.close()


def test_list_maps_gpu_and_mig_devices_to_containers(client: KubeletClient) -> None:
    assert client.list() == (
        Assignment(GPU0, "nvidia.com/gpu", "llm", "vllm-0", "engine"),
        Assignment(GPU1, "nvidia.com/gpu", "llm", "vllm-0", "engine"),
        Assignment(MIG, "nvidia.com/mig-1g.18gb", "batch", "embed-7", "worker"),
        Assignment(GPU0, "nvidia.com/gpu.shared", "dev", "nb-a", "lab"),
        Assignment(GPU0, "nvidia.com/gpu.shared", "dev", "nb-b", "lab"),  # 2 replicas, once
    )


def test_get_answers_one_pod(client: KubeletClient, fake_kubelet: Served) -> None:
    assert client.get("batch", "embed-7") == (
        Assignment(MIG, "nvidia.com/mig-1g.18gb", "batch", "embed-7", "worker"),
    )
    with pytest.raises(KubeletError) as caught:
        client.get("batch", "gone")
    assert caught.value.code == "kubelet_not_found"
    assert fake_kubelet.kubelet.calls == ["Get", "Get"]


def test_an_empty_node_lists_nothing(fake_kubelet: Served) -> None:
    client = KubeletClient(fake_kubelet.socket)
    try:
        assert client.list() == ()
    finally:
        client.close()


def test_no_socket_is_a_coded_error(tmp_path: Path) -> None:
    client = KubeletClient(tmp_path / "absent.sock", timeout=0.5)
    with pytest.raises(KubeletError) as caught:
        client.list()
    assert caught.value.code == "kubelet_no_socket"
    assert "absent.sock" in str(caught.value)
    client.close()


def test_a_kubelet_that_stops_is_unavailable_then_comes_back(fake_kubelet: Served) -> None:
    fake_kubelet.kubelet.pods = pod_resources(PODS[:1])
    client = KubeletClient(fake_kubelet.socket, timeout=1.0)
    try:
        assert len(client.list()) == 2
        fake_kubelet.server.stop(grace=None).wait()
        fake_kubelet.socket.unlink(missing_ok=True)
        fake_kubelet.socket.touch()  # a stale file where the socket was: nobody answers
        with pytest.raises(KubeletError) as caught:
            client.list()
        assert caught.value.code in {"kubelet_unavailable", "kubelet_deadline_exceeded"}
        fake_kubelet.socket.unlink()
        again = serve(fake_kubelet.kubelet, fake_kubelet.socket)
        try:
            deadline = time.monotonic() + 20
            while True:  # grpc reconnects with backoff: poll with a deadline
                try:
                    assert len(client.list()) == 2
                    break
                except KubeletError:
                    assert time.monotonic() < deadline, "the client never reconnected"
                    time.sleep(0.05)
        finally:
            again.server.stop(grace=None).wait()
    finally:
        client.close()


def test_without_grpcio_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "grpc", None)
    with pytest.raises(UnavailableError) as caught:
        KubeletClient(tmp_path / "kubelet.sock")
    assert GRPC_HINT in str(caught.value)
    assert GRPC_HINT == "pip install 'gpumetrics[k8s]'"


@pytest.mark.parametrize(
    ("name", "gpu"),
    [
        ("nvidia.com/gpu", True),
        ("nvidia.com/gpu.shared", True),
        ("nvidia.com/mig-3g.71gb", True),
        ("nvidia.com/gpumem", False),
        ("amd.com/gpu", False),
        ("cpu", False),
    ],
)
def test_gpu_resource_names(name: str, gpu: bool) -> None:
    assert is_gpu_resource(name) is gpu


def test_the_package_imports_without_grpcio() -> None:
    """serve, the pods source and the kubelet module load in an interpreter where grpc and
    protobuf cannot be imported (the k8s extra not installed)."""
    code = (
        "import sys\n"
        "for name in ('grpc', 'google.protobuf', 'google'):\n"
        "    sys.modules[name] = None\n"
        "import gpumetrics.cli.serve, gpumetrics.cli._build, gpumetrics.sources.pods.kubelet\n"
        "from gpumetrics.sources.pods.kubelet import grpc_available\n"
        "assert not grpc_available()\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
