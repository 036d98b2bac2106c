"""`serve --pod-attribution`: the flag, its file key, the missing-extra error, and which
source each mode builds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpumetrics.cli import cli
from gpumetrics.cli._build import build_sources
from gpumetrics.cli.loader import load_settings
from gpumetrics.cli.serve import serve
from gpumetrics.settings import ServeSettings
from gpumetrics.sources.pods import PodAttributionSource
from gpumetrics.testing import parse_fake_gpus

from ..sources.pods.conftest import FakeKubelet
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
