"""The `gpumetrics` command. Thin wiring only: each subcommand lives in its own module and is
imported only when it is run or its help is asked for, so `gpumetrics --help` loads click and
nothing else of weight (no pynvml, prometheus_client, torch, yaml or bcrypt). A command that
needs an extra that is not installed (gpumetrics/extras.py) ends with one line naming it,
exit code 2."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType

import click

from .. import __version__
from ..extras import MissingExtraError

__all__ = ["COMMANDS", "BadInput", "ExtraNeeded", "LazyGroup", "cli", "main"]

#: Subcommand -> (its module, whose attribute of the same name is the command; the first line
#: of its help, which `gpumetrics --help` lists without importing it — a test holds the two
#: to the same text).
COMMANDS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "doctor": (
            "gpumetrics.cli.doctor",
            "Check NVML, GPUs (peaks, MIG, GPM, NVLink, XID) and InfiniBand ports.",
        ),
        "kv-size": (
            "gpumetrics.cli.kv_size",
            "How much KV memory a trace needs for the prefix-cache hit ratio you want.",
        ),
        "profile": (
            "gpumetrics.cli.profile",
            "Where a workload sits on its roofline, what bounds it, and what would change it.",
        ),
        "render": (
            "gpumetrics.cli.render",
            "Regenerate METRICS.md, dashboards/ and alerts/ (rules, runbooks) from the catalog.",
        ),
        "roofline": (
            "gpumetrics.cli.roofline",
            "Where decode sits against the GPU's ops:byte ridge, per batch size and context.",
        ),
        "serve": (
            "gpumetrics.cli.serve",
            "Export GPU, interconnect and engine metrics for Prometheus (and OTLP).",
        ),
        "top": (
            "gpumetrics.cli.top",
            "Live view of a node: naive GPU utilisation beside SM/tensor/DRAM activity, MFU, "
            "MBU, NVLink and InfiniBand, and per engine batch occupancy, KV usage, hit ratio, "
            "preemptions, tokens/s and the roofline bound.",
        ),
        "worker": (
            "gpumetrics.cli.worker",
            "Run the reference worker (paged KV cache, prefix caching, continuous batching) "
            "under a multi-turn chat load; every step is reported through gpumetrics.hooks.",
        ),
    }
)


class BadInput(click.ClickException):
    """Input the command cannot run with, reported as one line `Error: ...` without the usage
    text, exit code 2 (the code of a usage error)."""

    exit_code = 2


class ExtraNeeded(BadInput):
    """A MissingExtraError as the CLI reports it: the command cannot run as asked on this
    install."""


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click's lazy-group pattern), and
    whose command list is written from `COMMANDS` without importing any of them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[cmd_name][0])
        command = getattr(module, cmd_name.replace("-", "_"))  # kv-size: kv_size
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MissingExtraError as exc:  # raised while parsing options or running
            raise ExtraNeeded(str(exc)) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        # A bare Command shortens the text exactly as the real one's help would be shortened.
        rows = [
            (n, click.Command(n, help=h).get_short_help_str(limit))
            for n, (_, h) in COMMANDS.items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "GPUMETRICS"},
)
@click.version_option(__version__, prog_name="gpumetrics")
def cli() -> None:
    """GPU metrics for LLM inference that say whether the GPU does useful work."""


def main() -> None:
    cli()
