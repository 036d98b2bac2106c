"""The lazy command group: `gpumetrics --help` and `roofline` import only what they use, and the
command list written without importing the commands says what each command says of itself."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from gpumetrics.cli import COMMANDS, cli

#: What neither `gpumetrics --help` nor `roofline` may load (issue 15: 0.6 s of imports).
HEAVY = (
    "pynvml",
    "prometheus_client",
    "gpumetrics.testing.fakenvml",
    "bcrypt",
    "yaml",
    "torch",
    "opentelemetry",
    "grafana_foundation_sdk",
)


def _loaded(args: list[str]) -> tuple[list[str], str]:
    """Run the CLI in a fresh interpreter; return the HEAVY modules it loaded, and its stdout."""
    code = (
        "import json, sys\n"
        "from gpumetrics.cli import main\n"
        f"sys.argv = ['gpumetrics', *{args!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    *output, last = result.stdout.strip().splitlines()
    return json.loads(last), "\n".join(output)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["roofline", "--model", "llama-3-8b", "--gpu", "h200", "--batch", "1,64", "--json"],
        ["roofline", "--gpu", "h100-sxm", "--context", "512"],
    ],
    ids=["help", "roofline-json", "roofline-table"],
)
def test_help_and_roofline_import_nothing_heavy(args: list[str]) -> None:
    heavy, output = _loaded(args)
    assert heavy == []
    assert output  # it did run: the help or the plan was printed


def test_a_command_that_needs_nvml_does_load_it() -> None:
    """The check above can fail: `doctor` probes NVML, and pynvml shows up."""
    heavy, output = _loaded(
        ["doctor", "--fake-gpus", "a100", "--json", "--ib-root", "/nonexistent"]
    )
    assert "pynvml" in heavy
    assert json.loads(output)["checks"]


def test_every_listed_command_loads_and_its_listed_help_is_its_own() -> None:
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(COMMANDS)
    for name, (_, listed) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        assert command.name == name
        assert click.Command(name, help=listed).get_short_help_str(1000) == (
            command.get_short_help_str(1000)
        ), f"COMMANDS[{name!r}] no longer matches the first line of its help"


def test_help_lists_every_command_and_an_unknown_one_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line]
    assert listed == sorted(COMMANDS)
    result = CliRunner().invoke(cli, ["rooflne"])
    assert result.exit_code == 2
    assert "No such command 'rooflne'" in result.output
