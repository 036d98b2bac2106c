"""The one settings loader: every command's parameters are exactly its settings' fields, the
precedence flags > environment > config file > defaults holds, and a settings check is a
usage error (exit 2)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gpumetrics import settings as settings_module
from gpumetrics.cli import COMMANDS, cli
from gpumetrics.cli.loader import load_settings
from gpumetrics.engine_config import EngineConfig
from gpumetrics.settings import ServeSettings, WorkerSettings

#: Each command's settings record, and the flags that are actions rather than settings.
RECORDS = {
    "doctor": (settings_module.DoctorSettings, ()),
    "kv-size": (settings_module.KvSizeSettings, ()),
    "profile": (settings_module.ProfileSettings, ()),
    "render": (settings_module.RenderSettings, ()),
    "roofline": (settings_module.RooflineSettings, ()),
    "serve": (settings_module.ServeSettings, ("print_config",)),
    "top": (settings_module.TopSettings, ()),
    "worker": (settings_module.WorkerSettings, ()),
}


def test_every_command_has_a_frozen_settings_record() -> None:
    assert RECORDS.keys() == COMMANDS.keys()
    for record, _ in RECORDS.values():
        assert dataclasses.is_dataclass(record)
        assert record.__dataclass_params__.frozen  # type: ignore[attr-defined]
        assert hasattr(record, "__slots__")


#: The least a command needs on its command line (its required options).
REQUIRED = {
    "kv-size": [
        "--trace",
        str(Path(__file__).parents[1] / "data" / "mooncake" / "conversation_trace.jsonl.gz"),
    ],
}


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_defaults_load_into_the_record(name: str) -> None:
    record, actions = RECORDS[name]
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    args = REQUIRED.get(name, [])
    loaded = load_settings(record, command.make_context(name, args), actions=actions)
    assert isinstance(loaded, record)


def test_a_parameter_without_a_field_is_a_programming_error() -> None:
    @click.command()
    @click.option("--port", type=int, default=1)
    def command(**_: object) -> None:
        pass

    with pytest.raises(TypeError, match="differ"):
        load_settings(settings_module.RenderSettings, command.make_context("c", []))


def test_a_failed_settings_check_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["worker", "--requests", "3", "--duration", "1"])
    assert result.exit_code == 2
    assert "give --requests or --duration, not both" in result.output


def test_worker_turns_default_to_50_unless_bounded() -> None:
    base = {f.name: None for f in dataclasses.fields(WorkerSettings)}
    assert WorkerSettings(**base).turns == 50  # type: ignore[arg-type]
    assert WorkerSettings(**{**base, "requests": 7}).turns == 7  # type: ignore[arg-type]
    assert WorkerSettings(**{**base, "duration": 2.0}).turns is None  # type: ignore[arg-type]


def _printed(args: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    result = CliRunner(env=env).invoke(cli, ["serve", *args, "--print-config"])
    assert result.exit_code == 0, result.output
    printed: dict[str, object] = json.loads(result.output)
    return printed


def test_serve_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    config = tmp_path / "gpumetrics.toml"
    config.write_text(
        "[serve]\nport = 9100\ninterval = 2.0\n[metrics]\nexclude = ['gpumetrics_gpu_process_*']\n"
        "[otlp]\nheaders = { 'x-api-key' = 'secret' }\n"
        "[[engines]]\nname = 'file'\nurl = 'http://127.0.0.1:8000'\n"
    )
    from_file = _printed(["--config", str(config)])
    assert (from_file["port"], from_file["interval"], from_file["address"]) == (
        9100,
        2.0,
        "0.0.0.0",
    )
    assert from_file["exclude"] == ["gpumetrics_gpu_process_*"]
    assert [e["name"] for e in from_file["engines"]] == ["file"]  # type: ignore[attr-defined]
    assert from_file["otlp_headers"] == ["x-api-key"]  # the value is not printed
    env = {"GPUMETRICS_SERVE_PORT": "9200", "GPUMETRICS_SERVE_ENGINE": "env=http://h:1"}
    from_env = _printed(["--config", str(config)], env)
    assert from_env["port"] == 9200
    assert [e["name"] for e in from_env["engines"]] == ["env"]  # type: ignore[attr-defined]
    flags = _printed(["--config", str(config), "--port", "9300", "--engine", "a=http://h:2"], env)
    assert flags["port"] == 9300
    assert [e["name"] for e in flags["engines"]] == ["a"]  # type: ignore[attr-defined]
    assert flags["exclude"] == ["gpumetrics_gpu_process_*"]  # not given again: the file's


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "a=http://x:1,kind=bogus"], "kind: 'bogus': one of gpumetrics"),
        (["--engine", "a=http://x:1", "--engine", "a=http://y:1"], "repeated: a"),
        (["--fake-gpus", "t4x2"], "unknown fake GPU spec 't4x2'"),
        (["--gpu", "no-such-gpu"], "unknown GPU 'no-such-gpu'"),
        (["--include", "gpumetrics_nothing_*"], "matches no metric"),
        (["--otlp-header", "no-equals"], "is not KEY=VALUE"),
        (["--gpu-spec", "h200"], "No such option '--gpu-spec'. Did you mean '--gpu'?"),
    ],
)
def test_print_config_validates(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["serve", *args, "--print-config"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_print_config_shows_the_engines_the_sidecar_would_scrape() -> None:
    printed = _printed(["--engine", "v=http://127.0.0.1:8000/metrics,kind=vllm,gpus=0+1"])
    (engine,) = printed["engines"]  # type: ignore[misc]
    assert EngineConfig(**{**engine, "gpus": tuple(engine["gpus"])}) == EngineConfig(
        "v", "http://127.0.0.1:8000/metrics", kind="vllm", gpus=("0", "1")
    )
    assert {f.name for f in dataclasses.fields(ServeSettings)} | {"metrics"} == printed.keys()
