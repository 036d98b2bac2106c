"""`gpumetrics serve` start-up failures: clear messages and a non-zero exit, no traceback."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from gpumetrics.cli import cli
from gpumetrics.testing import FakeNvml, parse_fake_gpus

from ..integration.servers import wait_for
from ..integration.sidecar import gpumetrics_serve


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            cli,
            [
                "serve",
                "--fake-gpus",
                "a100",
                "--no-infiniband",
                "--address",
                "127.0.0.1",
                "--port",
                str(port),
            ],
        )
    assert result.exit_code != 0
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_require_gpu_without_a_driver_exits() -> None:
    with FakeNvml(parse_fake_gpus("a100"), library_missing=True):
        result = CliRunner().invoke(
            cli, ["serve", "--require-gpu", "--no-infiniband", "--port", "0"]
        )
    assert result.exit_code == 1
    assert "--require-gpu" in result.stderr
    assert "libnvidia-ml.so.1" in result.stderr


def test_unknown_fake_profile_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["serve", "--fake-gpus", "t4x2", "--port", "0"])
    assert result.exit_code != 0
    assert "unknown fake GPU spec" in result.stderr


def test_engine_gpus_declared_by_index_get_their_uuid() -> None:
    from gpumetrics.cli._build import build_sources  # noqa: PLC0415
    from gpumetrics.cli.loader import load_settings  # noqa: PLC0415
    from gpumetrics.cli.serve import serve  # noqa: PLC0415
    from gpumetrics.settings import ServeSettings  # noqa: PLC0415
    from gpumetrics.sources.engine import EngineSource  # noqa: PLC0415

    args = ["--no-gpm", "--no-infiniband", "--engine", "e=http://127.0.0.1:1/metrics,gpus=1"]
    settings = load_settings(
        ServeSettings, serve.make_context("serve", args), actions=("print_config",)
    )
    sources, undo = build_sources(settings, fake=parse_fake_gpus("h200x2"))
    try:
        nvml = sources[0]
        engine = sources[1]
        assert isinstance(engine, EngineSource)
        (ref,) = engine.config.gpu_refs
        uuid = next(d.uuid for d in nvml.devices if d.index == 1)  # type: ignore[attr-defined]
        assert (ref.index, ref.uuid) == ("1", uuid)
    finally:
        for source in sources:
            source.close()
        undo()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--derived-window", "5x"], "is not a duration"),
        (["--derived-window", "0s"], "longer than 0s"),
        (["--derived-window", "3s", "--interval", "2"], "fewer than two sampling cycles"),
    ],
)
def test_a_bad_derived_window_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["serve", *args, "--print-config"])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_derived_window_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "gpumetrics.toml"
    config.write_text('[serve]\nderived_window = "30s"\n')
    result = CliRunner().invoke(cli, ["serve", f"--config={config}", "--print-config"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["derived_window"] == "30s"


def test_nvlink_per_link_from_flag_file_and_into_the_source(tmp_path: Path) -> None:
    from gpumetrics.cli._build import build_sources  # noqa: PLC0415
    from gpumetrics.cli.loader import load_settings  # noqa: PLC0415
    from gpumetrics.cli.serve import serve  # noqa: PLC0415
    from gpumetrics.settings import ServeSettings  # noqa: PLC0415

    config = tmp_path / "gpumetrics.toml"
    config.write_text("[sources]\nnvlink_per_link = true\n")
    result = CliRunner().invoke(cli, ["serve", f"--config={config}", "--print-config"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["nvlink_per_link"] is True
    default = CliRunner().invoke(cli, ["serve", "--print-config"])
    assert json.loads(default.stdout)["nvlink_per_link"] is False
    for args, links in (([], set()), (["--nvlink-per-link"], {str(i) for i in range(18)})):
        context = serve.make_context("serve", ["--no-gpm", "--no-infiniband", *args])
        settings = load_settings(ServeSettings, context, actions=("print_config",))
        sources, undo = build_sources(settings, fake=parse_fake_gpus("h200x1"))
        try:
            samples = sources[0].collect(1.0).samples
        finally:
            for source in sources:
                source.close()
            undo()
        per_link = {
            s.labels[3] for s in samples if s.metric.startswith("gpumetrics_gpu_nvlink_link_")
        }
        assert per_link == links
        assert any(s.metric == "gpumetrics_gpu_nvlink_data_bytes_total" for s in samples)


def _series(port: int) -> dict[str, dict[str, str]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        sample.name: dict(sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _nvml_cycle(port: int) -> float:
    """When the NVML source's last cycle started (0 before the first)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gpumetrics_source_last_success_timestamp_seconds" and (
                sample.labels.get("source") == "nvml"
            ):
                return float(sample.value)
    return 0.0


@pytest.mark.slow
def test_serve_exports_derived_gauges_and_exclude_drops_them(tmp_path: Path) -> None:
    """A real `serve` on fake H200s: NVLink utilization appears, labelled with its window,
    once two cycles are in it; --exclude removes the derived family like any other."""
    common = ("--fake-gpus", "h200x2", "--fake-workload", "steady", "--no-infiniband")
    nvlink = "gpumetrics_gpu_nvlink_bandwidth_utilization_ratio"
    with gpumetrics_serve(tmp_path, *common, "--interval", "0.2", "--derived-window", "2s") as port:
        labels = wait_for(lambda: _series(port).get(nvlink), 20, "the derived NVLink gauge")
    assert labels["window"] == "2s"
    with gpumetrics_serve(
        tmp_path, *common, "--interval", "0.2", "--exclude", "gpumetrics_gpu_nvlink_bandwidth_*"
    ) as port:
        first = wait_for(lambda: _nvml_cycle(port), 20, "a first NVML cycle")
        # Several cycles later the gauge would be there (the first run saw it after two).
        wait_for(lambda: _nvml_cycle(port) >= first + 1.0, 20, "five more NVML cycles")
        assert nvlink not in _series(port)
