"""A fake kubelet: a real grpc server on a unix socket serving the vendored PodResources v1
proto, its answers built from the generated messages."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from gpumetrics.sources.pods._proto import api_pb2, api_pb2_grpc

#: (namespace, pod, container, resource, device ids) per container.
Container = tuple[str, str, str, str, tuple[str, ...]]


def pod_resources(containers: list[Container]) -> list[Any]:
    """v1.PodResources messages, one per (namespace, pod), in first-seen order."""
    pods: dict[tuple[str, str], Any] = {}
    for namespace, pod, name, resource, ids in containers:
        message = pods.setdefault(
            (namespace, pod), api_pb2.PodResources(name=pod, namespace=namespace)
        )
        message.containers.append(
            api_pb2.ContainerResources(
                name=name,
                devices=[api_pb2.ContainerDevices(resource_name=resource, device_ids=list(ids))],
                cpu_ids=[2, 3],
            )
        )
    return list(pods.values())


@dataclass
class FakeKubelet(api_pb2_grpc.PodResourcesListerServicer):  # type: ignore[misc]
    """Answers List with `pods`; Get with the pod named, or NOT_FOUND. Counts calls."""

    pods: list[Any] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def List(self, request: Any, context: Any) -> Any:  # noqa: N802 - the proto's name
        self.calls.append("List")
        return api_pb2.ListPodResourcesResponse(pod_resources=self.pods)

    def Get(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.calls.append("Get")
        for pod in self.pods:
            if (pod.namespace, pod.name) == (request.pod_namespace, request.pod_name):
                return api_pb2.GetPodResourcesResponse(pod_resources=pod)
        context.abort(grpc.StatusCode.NOT_FOUND, f"pod {request.pod_name} not found")
        return None


@dataclass
class Served:
    kubelet: FakeKubelet
    socket: Path
    server: Any

    def stop(self) -> None:
        """Stop serving and remove the socket (the kubelet going away)."""
        self.server.stop(grace=None).wait()
        self.socket.unlink(missing_ok=True)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # A short path: unix socket paths are limited to 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="kubelet-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def serve(kubelet: FakeKubelet, socket: Path) -> Served:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    api_pb2_grpc.add_PodResourcesListerServicer_to_server(kubelet, server)
    assert server.add_insecure_port(f"unix://{socket}") == 1
    server.start()
    return Served(kubelet, socket, server)


@pytest.fixture
def fake_kubelet(socket_dir: Path) -> Iterator[Served]:
    served = serve(FakeKubelet(), socket_dir / "kubelet.sock")
    yield served
    served.server.stop(grace=None).wait()
