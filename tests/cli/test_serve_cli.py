"""`gpumetrics serve` start-up failures: clear messages and a non-zero exit, no traceback."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from gpumetrics.cli import cli
from gpumetrics.testing import FakeNvml, parse_fake_gpus


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
