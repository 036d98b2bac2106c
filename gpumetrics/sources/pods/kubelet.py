"""The kubelet PodResources API v1 over its unix socket (grpcio, in the `k8s` extra).

`List` answers every pod's containers with their devices (`kubectl get --raw` has no
equivalent; `crictl` neither: this socket is what device monitoring agents read); `Get`
answers one pod. Only GPU resources are kept: `nvidia.com/gpu` (and renamed shares such as
`nvidia.com/gpu.shared`) and the MIG resources `nvidia.com/mig-<profile>`. Device ids are GPU
UUIDs or MIG UUIDs; a time-slicing replica id `GPU-...::2` is reduced to its GPU's UUID.

grpc and the generated stubs (`_proto/`) are imported when a client is built, so the package
imports without grpcio; building one without it raises UnavailableError naming the extra.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from pathlib import Path
from typing import Any

from ...errors import GpumetricsError, UnavailableError
from .model import Assignment

__all__ = [
    "DEFAULT_SOCKET",
    "GRPC_HINT",
    "KubeletClient",
    "KubeletError",
    "gpu_assignments",
    "grpc_available",
    "is_gpu_resource",
]

#: Where the kubelet serves PodResources (hostPath /var/lib/kubelet/pod-resources).
DEFAULT_SOCKET = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
GRPC_HINT = "pip install 'gpumetrics[k8s]'"
#: Reconnect to a restarted kubelet within seconds (grpc's default backoff grows to 120 s).
_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


class KubeletError(GpumetricsError):
    """A PodResources call failed; `code` is stable for gpumetrics_source_errors_total:
    `kubelet_no_socket`, or `kubelet_<grpc status>` (`kubelet_unavailable`, ...)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def grpc_available() -> bool:
    """Whether grpcio imports here (the `k8s` extra is installed)."""
    try:
        import_module("grpc")
    except ImportError:
        return False
    return True


def is_gpu_resource(name: str) -> bool:
    """Whether a device-plugin resource name is an NVIDIA GPU or MIG device."""
    return name == "nvidia.com/gpu" or name.startswith(("nvidia.com/gpu.", "nvidia.com/mig-"))


def gpu_assignments(pods: Iterable[Any]) -> tuple[Assignment, ...]:
    """The GPU devices in PodResources messages (v1.PodResources), in answer order, each
    (device, container) once."""
    out: dict[tuple[str, str, str, str], Assignment] = {}
    for pod in pods:
        for container in pod.containers:
            for devices in container.devices:
                if not is_gpu_resource(devices.resource_name):
                    continue
                for device_id in devices.device_ids:
                    device = device_id.split("::", 1)[0]
                    key = (device, pod.namespace, pod.name, container.name)
                    out.setdefault(
                        key,
                        Assignment(
                            device, devices.resource_name, pod.namespace, pod.name, container.name
                        ),
                    )
    return tuple(out.values())


class KubeletClient:
    """A PodResourcesLister client on `socket`; every call waits at most `timeout` seconds.

    The channel is opened once and reconnects by itself (a restarted kubelet, a socket that
    comes back); a call that fails raises KubeletError with a stable code."""

    def __init__(self, socket: Path = DEFAULT_SOCKET, *, timeout: float = 5.0) -> None:
        try:
            import grpc  # noqa: PLC0415 - the k8s extra, imported on demand

            from ._proto import api_pb2, api_pb2_grpc  # noqa: PLC0415
        except ImportError as exc:
            raise UnavailableError(
                "the kubelet PodResources client", f"grpcio is not installed ({exc})", GRPC_HINT
            ) from exc
        self._grpc: Any = grpc
        self._pb: Any = api_pb2
        self._socket = socket
        self._timeout = timeout
        self._channel: Any = grpc.insecure_channel(
            f"unix://{socket.absolute()}", options=_CHANNEL_OPTIONS
        )
        self._stub: Any = api_pb2_grpc.PodResourcesListerStub(self._channel)  # type: ignore[no-untyped-call]

    @property
    def socket(self) -> Path:
        return self._socket

    def _call(self, method: Any, request: Any) -> Any:
        if not self._socket.exists():
            raise KubeletError("kubelet_no_socket", f"no kubelet socket at {self._socket}")
        try:
            return method(request, timeout=self._timeout)
        except self._grpc.RpcError as exc:
            status = exc.code()
            name = status.name.lower() if status is not None else "unknown"
            raise KubeletError(
                f"kubelet_{name}", f"PodResources at {self._socket}: {name}: {exc.details()}"
            ) from None

    def list(self) -> tuple[Assignment, ...]:
        """GPU devices of every pod on the node (PodResourcesLister/List)."""
        answer = self._call(self._stub.List, self._pb.ListPodResourcesRequest())
        return gpu_assignments(answer.pod_resources)

    def get(self, namespace: str, pod: str) -> tuple[Assignment, ...]:
        """GPU devices of one pod (PodResourcesLister/Get; kubelet 1.27+, feature gate
        KubeletPodResourcesGet)."""
        request = self._pb.GetPodResourcesRequest(pod_name=pod, pod_namespace=namespace)
        answer = self._call(self._stub.Get, request)
        return gpu_assignments([answer.pod_resources])

    def close(self) -> None:
        self._channel.close()
