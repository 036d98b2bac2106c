"""`gpumetrics doctor`: what this node supports and, where it does not, why and what to do."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..errors import GpumetricsError
from ..samples import Check
from ..settings import DoctorSettings
from ..sources.doctor import group_checks
from ..sources.ib_doctor import probe_infiniband
from ..sources.infiniband import DEFAULT_ROOT as IB_ROOT
from ..sources.nvml_doctor import probe_nvml
from ..testing import FakeNvml, parse_fake_gpus
from .loader import load_settings

__all__ = ["doctor"]

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--ib-root", type=click.Path(path_type=Path), default=IB_ROOT, show_default=True)
@click.option("--fake-gpus", metavar="SPEC", help="Probe fake GPUs (demo): h200x8, a100, mig...")
@click.pass_context
def doctor(ctx: click.Context, /, **_: object) -> None:
    """Check NVML, GPUs (peaks, MIG, GPM, NVLink, XID) and InfiniBand ports.

    Exits 1 when a check fails (something gpumetrics needs does not work), else 0.
    """
    s = load_settings(DoctorSettings, ctx)
    try:
        profile = parse_fake_gpus(s.fake_gpus) if s.fake_gpus else None
    except GpumetricsError as exc:
        raise click.BadParameter(str(exc), param_hint="--fake-gpus") from None
    fake = FakeNvml(profile).install() if profile is not None else None
    try:
        checks = [*probe_nvml(), *probe_infiniband(s.ib_root)]
    finally:
        if fake is not None:
            fake.uninstall()
    if s.as_json:
        click.echo(json.dumps({"checks": [asdict(c) for c in checks]}, indent=2))
    else:
        _print(checks)
    if any(c.status == "fail" for c in checks):
        raise SystemExit(1)


def _print(checks: list[Check]) -> None:
    table = Table(title="gpumetrics doctor")
    for header in ("where", "what", "status", "detail", "hint"):
        table.add_column(header, overflow="fold")
    for check in group_checks(checks):  # one row per distinct check; --json keeps all
        style = _STYLE.get(check.status, "")
        table.add_row(
            check.area, check.name, f"[{style}]{check.status}[/]", check.detail, check.hint
        )
    console = Console()
    console.width = max(console.width, 140)
    console.print(table)
