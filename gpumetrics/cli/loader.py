"""The one settings loader: a command's resolved parameters -> its frozen settings record."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import fields
from typing import Any, TypeVar

import click

from ..errors import GpumetricsError

__all__ = ["load_settings"]

T = TypeVar("T")


def load_settings(cls: type[T], ctx: click.Context, *, actions: Collection[str] = ()) -> T:
    """`cls` (a `gpumetrics.settings` record) from `ctx.params`, once.

    By the time a command runs, click has resolved every parameter with the precedence flags,
    then `GPUMETRICS_<COMMAND>_<OPTION>` environment variables, then the default map (`serve
    --config`'s TOML file), then the option's default, and converted it with its type. Every
    field of `cls` must be a parameter and every parameter a field, except `actions` (flags
    that say what to do, such as --print-config): a mismatch is a programming error. A
    GpumetricsError from the record's own checks is a usage error (exit 2)."""
    params: dict[str, Any] = {k: v for k, v in ctx.params.items() if k not in actions}
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    if names != params.keys():
        raise TypeError(
            f"{cls.__name__} fields and {ctx.info_name} parameters differ: "
            f"{sorted(names ^ params.keys())}"
        )
    try:
        return cls(**params)
    except GpumetricsError as exc:
        raise click.UsageError(str(exc), ctx=ctx) from None
