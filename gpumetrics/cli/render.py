"""`gpumetrics render [--check]`: regenerate the files generated from the catalog."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from ..extras import require
from ..settings import RenderSettings
from .loader import load_settings

__all__ = ["render"]


@click.command()
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write into [default: the gpumetrics checkout holding the current "
    "directory; outside one, --root is required].",
)
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Write nothing; exit 1 if a generated file differs from the catalog.",
)
@click.option(
    "--runbook-base-url",
    metavar="URL",
    help="Absolute URL the alerts' runbook_url annotations start with, so notifications "
    "link (e.g. https://github.com/ORG/REPO/blob/main/docs/runbooks/) [default: the "
    "repository-relative docs/runbooks/].",
)
@click.pass_context
def render(ctx: click.Context, /, **_: object) -> None:
    """Regenerate METRICS.md, dashboards/ and alerts/ (rules, runbooks) from the catalog.

    Each file is replaced atomically (a temporary file, then a rename).
    """
    s = load_settings(RenderSettings, ctx)
    # Imported here: grafana-foundation-sdk is heavy (the `render` extra), and `serve`
    # processes never render.
    require("render", "gpumetrics render")
    from ..render import check, find_checkout, write  # noqa: PLC0415
    from ..render.rules.model import DEFAULT_CONFIG  # noqa: PLC0415

    config = DEFAULT_CONFIG
    if s.runbook_base_url is not None:
        config = replace(DEFAULT_CONFIG, runbook_base_url=s.runbook_base_url)

    root = s.root if s.root is not None else find_checkout(Path.cwd())
    if root is None:
        raise click.UsageError(
            f"{Path.cwd()} is not inside a gpumetrics checkout (no pyproject.toml naming "
            "gpumetrics here or above); give --root DIR to write there"
        )
    if s.check_only:
        stale = check(root, config)
        if stale:
            click.echo(f"out of date: {', '.join(stale)} (run: gpumetrics render)", err=True)
            raise SystemExit(1)
        click.echo("generated files are up to date")
        return
    changed = write(root, config)
    click.echo(f"wrote {', '.join(changed)} under {root}" if changed else "nothing changed")
