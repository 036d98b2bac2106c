"""PodAttributionSource: the join metric and per-pod utilization against hand-computed values,
from a real grpc kubelet or a fake /proc tree, over FakeNvml; a kubelet that goes away turns
only this source down."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gpumetrics.catalog import gpu as g
from gpumetrics.catalog import health
from gpumetrics.catalog import pods as p
from gpumetrics.pipeline import Sampler
from gpumetrics.samples import Collection
from gpumetrics.sources.nvml import NvmlSource
from gpumetrics.sources.nvml_processes import NvmlProcessReader
from gpumetrics.sources.pods import PodAttributionSource
from gpumetrics.sources.pods.kubelet import KubeletClient
from gpumetrics.testing import FakeNvml

from .conftest import Served, pod_resources

UID_A = "8e2c4a1f-3b5d-4e6f-9a0b-1c2d3e4f5a6b"
UID_B = "11111111-2222-4333-8444-555555555555"
CID = ["a" * 64, "b" * 64, "c" * 64]


def values(collection: Collection, metric: str) -> dict[tuple[str, ...], float]:
    return {s.labels: float(s.value) for s in collection.samples if s.metric == metric}  # type: ignore[arg-type]


@pytest.fixture
def uuids(install_fake: Callable[..., FakeNvml]) -> tuple[FakeNvml, list[str]]:
    """An h100x8 FakeNvml: GPU 0 runs pids 101 and 102 (SM 30 % + 15 %, memory 10 % + 5 %) and
    a host process 103 (20 %, 20 %); GPU 1 runs pid 201 (40 %, 25 %); GPU 2 runs 301 and 302
    (two time-sliced pods, 10 % each); the others nothing."""
    fake = install_fake("h100x8")
    fake.set_processes(0, [(101, 1), (102, 1), (103, 1)])
    fake.set_process_utilization(0, [(101, 30, 10), (102, 15, 5), (103, 20, 20)])
    fake.set_processes(1, [(201, 1)])
    fake.set_process_utilization(1, [(201, 40, 25)])
    fake.set_processes(2, [(301, 1), (302, 1)])
    fake.set_process_utilization(2, [(301, 10, 10), (302, 10, 10)])
    for gpu in range(3, 8):
        fake.set_processes(gpu, [])
        fake.set_process_utilization(gpu, [])
    reader = NvmlProcessReader()
    ids = [d.uuid for d in reader.devices]
    reader.close()
    return fake, ids


def test_kubelet_mode(fake_kubelet: Served, uuids: tuple[FakeNvml, list[str]]) -> None:
    _, ids = uuids
    fake_kubelet.kubelet.pods = pod_resources(
        [
            ("llm", "vllm-0", "engine", "nvidia.com/gpu", (ids[0], ids[1])),
            ("dev", "nb-a", "lab", "nvidia.com/gpu", (f"{ids[2]}::0",)),
            ("dev", "nb-b", "lab", "nvidia.com/gpu", (f"{ids[2]}::1",)),
            ("idle", "held", "c", "nvidia.com/gpu", (ids[3],)),
        ]
    )
    source = PodAttributionSource(
        kubelet=KubeletClient(fake_kubelet.socket), processes=NvmlProcessReader()
    )
    try:
        got = source.collect(1000.0)
    finally:
        source.close()
    assert source.mode == "kubelet"
    assert got.errors == ()
    assert values(got, p.GPU_POD_INFO.name) == {
        (ids[0], "llm", "vllm-0", "engine"): 1.0,
        (ids[1], "llm", "vllm-0", "engine"): 1.0,
        (ids[2], "dev", "nb-a", "lab"): 1.0,
        (ids[2], "dev", "nb-b", "lab"): 1.0,
        (ids[3], "idle", "held", "c"): 1.0,
    }
    # GPU 0: every process on it is the pod's (the kubelet gave the whole GPU to it):
    # 0.30 + 0.15 + 0.20 SM, 0.10 + 0.05 + 0.20 memory. GPU 2 is time-sliced: no series.
    sm = values(got, p.POD_SM_UTILIZATION.name)
    assert sm == pytest.approx(
        {
            (ids[0], "llm", "vllm-0"): 0.65,
            (ids[1], "llm", "vllm-0"): 0.40,
            (ids[3], "idle", "held"): 0.0,
        }
    )
    assert values(got, p.POD_MEMORY_UTILIZATION.name) == pytest.approx(
        {
            (ids[0], "llm", "vllm-0"): 0.35,
            (ids[1], "llm", "vllm-0"): 0.25,
            (ids[3], "idle", "held"): 0.0,
        }
    )


def _proc(root: Path, pid: int, cgroup: str) -> None:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "cgroup").write_text(cgroup)


def test_cgroup_mode(tmp_path: Path, uuids: tuple[FakeNvml, list[str]]) -> None:
    _, ids = uuids
    pod_a = f"kubepods-burstable-pod{UID_A.replace('-', '_')}.slice"
    _proc(tmp_path, 101, f"0::/kubepods.slice/{pod_a}/cri-containerd-{CID[0]}.scope\n")
    _proc(tmp_path, 102, f"0::/kubepods.slice/{pod_a}/cri-containerd-{CID[1]}.scope\n")
    _proc(tmp_path, 103, "0::/system.slice/sshd.service\n")  # a host process
    _proc(tmp_path, 201, f"11:memory:/kubepods/besteffort/pod{UID_B}/{CID[2]}\n")
    _proc(tmp_path, 301, f"0::/system.slice/docker-{CID[2]}.scope\n")  # docker, no pod
    # 302 has exited: no /proc entry
    source = PodAttributionSource(kubelet=None, processes=NvmlProcessReader(), proc_root=tmp_path)
    try:
        got = source.collect(1000.0)
    finally:
        source.close()
    assert source.mode == "cgroup"
    assert values(got, p.GPU_POD_INFO.name) == {
        (ids[0], "", UID_A, CID[0]): 1.0,
        (ids[0], "", UID_A, CID[1]): 1.0,
        (ids[1], "", UID_B, CID[2]): 1.0,
        (ids[2], "", "", CID[2]): 1.0,
    }
    # Pod A = pids 101 + 102 (the host's 103 is nobody's): SM 0.30 + 0.15, memory 0.10 + 0.05.
    assert values(got, p.POD_SM_UTILIZATION.name) == pytest.approx(
        {(ids[0], "", UID_A): 0.45, (ids[1], "", UID_B): 0.40}
    )
    assert values(got, p.POD_MEMORY_UTILIZATION.name) == pytest.approx(
        {(ids[0], "", UID_A): 0.15, (ids[1], "", UID_B): 0.25}
    )


def test_a_vanishing_kubelet_downs_only_this_source(
    fake_kubelet: Served, uuids: tuple[FakeNvml, list[str]]
) -> None:
    _, ids = uuids
    fake_kubelet.kubelet.pods = pod_resources([("llm", "v", "e", "nvidia.com/gpu", (ids[0],))])
    pods = PodAttributionSource(
        kubelet=KubeletClient(fake_kubelet.socket), processes=NvmlProcessReader()
    )
    nvml = NvmlSource(xid_timeout_ms=20)
    sampler = Sampler([nvml, pods], clock=lambda: 1000.0)
    try:
        first = sampler.sample_once()
        up = {s.labels: s.value for s in first.samples if s.metric == health.SOURCE_UP.name}
        assert up == {("nvml",): 1.0, ("pods",): 1.0}
        assert any(s.metric == p.GPU_POD_INFO.name for s in first.samples)
        fake_kubelet.stop()  # the kubelet goes away, socket and all
        second = sampler.sample_once()
    finally:
        sampler.stop()
        nvml.close()
        pods.close()
    up = {s.labels: s.value for s in second.samples if s.metric == health.SOURCE_UP.name}
    assert up == {("nvml",): 1.0, ("pods",): 0.0}
    errors = {s.labels: s.value for s in second.samples if s.metric == health.SOURCE_ERRORS.name}
    assert errors == {("pods", "kubelet_no_socket"): 1.0}
    assert not any(s.metric == p.GPU_POD_INFO.name for s in second.samples)
    assert sum(s.metric == g.GPU_UP.name for s in second.samples) == 8  # GPUs keep flowing


def test_needs_one_way_to_know() -> None:
    with pytest.raises(ValueError, match="kubelet or NVML"):
        PodAttributionSource(kubelet=None, processes=None)
