"""`gpumetrics render [--check]`: regenerate the files generated from the catalog."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["render"]


@click.command()
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Repository root to write into.",
)
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Write nothing; exit 1 if a generated file differs from the catalog.",
)
def render(root: Path, check_only: bool) -> None:
    """Regenerate METRICS.md, dashboards/ and alerts/ (rules, runbooks) from the catalog."""
    # Imported here: grafana-foundation-sdk is heavy, and `serve` processes never render.
    from ..render import check, write  # noqa: PLC0415

    if check_only:
        stale = check(root)
        if stale:
            click.echo(f"out of date: {', '.join(stale)} (run: gpumetrics render)", err=True)
            raise SystemExit(1)
        click.echo("generated files are up to date")
        return
    changed = write(root)
    click.echo(f"wrote {', '.join(changed)}" if changed else "nothing changed")
