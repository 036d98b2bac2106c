"""`serve --pod-attribution`: the flag, its file key, the missing-extra error, and which
source each mode builds."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from gpumetrics.cli import cli
from gpumetrics.cli._build import build_sources
from gpumetrics.cli.loader import load_settings
from gpumetrics.cli.serve import serve
from gpumetrics.settings import ServeSettings
from gpumetrics.sources.nvml_processes import NvmlProcessReader
from gpumetrics.sources.pods import PodAttributionSource
from gpumetrics.testing import FakeNvml, parse_fake_gpus

from ..integration.servers import wait_for
from ..integration.sidecar import gpumetrics_serve
from ..sources.pods.conftest import FakeKubelet, pod_resources
from ..sources.pods.conftest import serve as serve_kubelet


def test_kubelet_mode_without_grpcio_is_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "grpc", None)
    result = CliRunner().invoke(cli, ["serve", "--pod-attribution", "kubelet", "--port", "0"])
    assert result.exit_code == 2
    assert "pip install 'gpumetrics[k8s]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if "--pod-attribution" in line]) == 1


def test_flag_and_file_key(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text('[sources]\npod_attribution = "cgroup"\nkubelet_socket = "/k.sock"\n')
    shown = json.loads(
        CliRunner().invoke(cli, ["serve", "--config", str(config), "--print-config"]).output
    )
    assert (shown["pod_attribution"], shown["kubelet_socket"]) == ("cgroup", "/k.sock")
    shown = json.loads(CliRunner().invoke(cli, ["serve", "--print-config"]).output)
    assert shown["pod_attribution"] == "off"
    bad = CliRunner().invoke(cli, ["serve", "--pod-attribution", "yes", "--print-config"])
    assert bad.exit_code == 2


def _sources(args: list[str]) -> tuple[list[object], object]:
    settings = load_settings(
        ServeSettings,
        serve.make_context("serve", ["--no-gpm", "--no-infiniband", *args]),
        actions=("print_config",),
    )
    return build_sources(settings, fake=parse_fake_gpus("h200x2"))  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("mode", "with_socket", "expected"),
    [
        ("auto", False, "cgroup"),
        ("auto", True, "kubelet"),
        ("cgroup", True, "cgroup"),
        ("kubelet", True, "kubelet"),
        ("kubelet", False, "kubelet"),  # no socket yet: the source reports it, up 0
        ("off", True, None),
    ],
)
def test_modes_build_the_source(
    tmp_path: Path, mode: str, with_socket: bool, expected: str | None
) -> None:
    socket = tmp_path / "k.sock"
    served = serve_kubelet(FakeKubelet(), socket) if with_socket else None
    sources, undo = _sources(["--pod-attribution", mode, "--kubelet-socket", str(socket)])
    try:
        pods = [s for s in sources if isinstance(s, PodAttributionSource)]
        assert [s.mode for s in pods] == ([expected] if expected else [])
        assert [s.name for s in sources] == ["nvml", *(["pods"] if expected else [])]  # type: ignore[attr-defined]
    finally:
        for source in sources:
            source.close()  # type: ignore[attr-defined]
        undo()  # type: ignore[operator]
        if served is not None:
            served.server.stop(grace=None).wait()


@pytest.mark.slow
def test_a_real_serve_exports_the_join_from_a_real_kubelet(tmp_path: Path) -> None:
    """`gpumetrics serve --fake-gpus ... --pod-attribution kubelet` against the grpc fake
    kubelet: /metrics carries gpumetrics_gpu_pod_info for the GPU's UUID, source up; with the
    kubelet gone the pods source goes down and the GPU series stay."""
    socket = Path(tempfile.mkdtemp(prefix="kubelet-")) / "kubelet.sock"
    # FakeNvml's UUIDs are stable per profile: read them the way serve will.
    with FakeNvml("h200x2"):
        reader = NvmlProcessReader()
        uuid = reader.devices[0].uuid
        reader.close()
    kubelet = FakeKubelet(
        pods=pod_resources([("llm", "vllm-0", "engine", "nvidia.com/gpu", (uuid,))])
    )
    served = serve_kubelet(kubelet, socket)
    args = ("--fake-gpus", "h200x2", "--no-infiniband", "--interval", "0.2")
    try:
        with gpumetrics_serve(
            tmp_path, *args, "--pod-attribution", "kubelet", "--kubelet-socket", str(socket)
        ) as port:
            info = wait_for(lambda: _samples(port).get("gpumetrics_gpu_pod_info"), 20, "pod info")
            assert info == [
                (
                    {"gpu_uuid": uuid, "namespace": "llm", "pod": "vllm-0", "container": "engine"},
                    1.0,
                )
            ]
            served.stop()
            wait_for(
                lambda: ({"source": "pods"}, 0.0) in _samples(port)["gpumetrics_source_up"],
                20,
                "the pods source down",
            )
            samples = _samples(port)
            assert "gpumetrics_gpu_pod_info" not in samples
            assert len(samples["gpumetrics_gpu_up"]) == 2
    finally:
        served.server.stop(grace=None).wait()
        shutil.rmtree(socket.parent, ignore_errors=True)


def _samples(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out
