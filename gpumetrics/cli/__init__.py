"""The `gpumetrics` command. Thin wiring only: each subcommand lives in its own module."""

from __future__ import annotations

import click

from .. import __version__
from .doctor import doctor
from .profile import profile
from .render import render
from .roofline import roofline
from .serve import serve
from .top import top
from .worker import worker

__all__ = ["cli", "main"]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "GPUMETRICS"}
)
@click.version_option(__version__, prog_name="gpumetrics")
def cli() -> None:
    """GPU metrics for LLM inference that say whether the GPU does useful work."""


cli.add_command(roofline)
cli.add_command(render)
cli.add_command(serve)
cli.add_command(worker)
cli.add_command(doctor)
cli.add_command(profile)
cli.add_command(top)


def main() -> None:
    cli()
