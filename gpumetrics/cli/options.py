"""Parsing helpers shared by commands: comma lists, SI numbers, GPU and model lookup."""

from __future__ import annotations

import re
from pathlib import Path

import click

from ..costmodel import ModelSpec, find_model
from ..errors import GpumetricsError
from ..hardware import GpuSpec, find_gpu, load_gpu_spec, with_overrides

__all__ = ["parse_int_list", "parse_quantity", "resolve_gpu", "resolve_model"]

_SI = {
    "": 1.0,
    "k": 1e3,
    "m": 1e6,
    "g": 1e9,
    "t": 1e12,
    "p": 1e15,
    "e": 1e18,
    "ki": 2.0**10,
    "mi": 2.0**20,
    "gi": 2.0**30,
    "ti": 2.0**40,
}
_QUANTITY = re.compile(
    r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgtpe]i?)?\s*([a-z/]*)\s*$", re.IGNORECASE
)


def parse_int_list(option: str, text: str) -> list[int]:
    """'1,8,64' -> [1, 8, 64]; anything not a positive integer is a usage error (exit 2)."""
    values = []
    for raw in text.split(","):
        part = raw.strip()
        try:
            value = int(part)
        except ValueError:
            raise click.BadParameter(f"{part!r} is not an integer", param_hint=option) from None
        if value <= 0:
            raise click.BadParameter(f"must be positive, got {value}", param_hint=option)
        values.append(value)
    return values


def parse_quantity(option: str, text: str) -> float:
    """'4.8T', '4.8e12', '141Gi', '989.4 TFLOP/s' -> a float in base units (> 0)."""
    match = _QUANTITY.match(text)
    if not match:
        raise click.BadParameter(
            f"{text!r} is not a number (e.g. 4.8e12, 4.8T, 141Gi)", param_hint=option
        )
    value = float(match.group(1)) * _SI[(match.group(2) or "").lower()]
    if value <= 0:
        raise click.BadParameter(f"must be > 0, got {text!r}", param_hint=option)
    return value


def resolve_model(name: str) -> ModelSpec:
    try:
        return find_model(name)
    except GpumetricsError as exc:
        raise click.BadParameter(str(exc), param_hint="--model") from None


def resolve_gpu(
    name: str | None,
    spec_file: Path | None,
    dtype: str,
    peak_flops: str | None,
    hbm_bandwidth: str | None,
    gpu_memory: str | None,
) -> GpuSpec:
    """The GPU from the table or a spec file, with flag overrides applied."""
    try:
        if spec_file is not None:
            gpu = load_gpu_spec(spec_file)
        elif name is not None:
            gpu = find_gpu(name)
        else:
            raise click.UsageError("give --gpu NAME or --gpu-spec FILE")
        return (
            with_overrides(
                gpu,
                peak_flops={dtype: parse_quantity("--peak-flops", peak_flops)}
                if peak_flops
                else None,
                hbm_bandwidth=parse_quantity("--hbm-bandwidth", hbm_bandwidth)
                if hbm_bandwidth
                else None,
                memory_bytes=parse_quantity("--gpu-memory", gpu_memory) if gpu_memory else None,
            )
            if (peak_flops or hbm_bandwidth or gpu_memory)
            else gpu
        )
    except GpumetricsError as exc:
        raise click.BadParameter(str(exc), param_hint="--gpu") from None
