"""What commands share: click parameter types (int lists, quantities, output files, addresses,
engines, KEY=VALUE pairs), the options several commands declare alike, and model and GPU
lookup. A bad value is a usage error (exit 2) naming the option, before any work starts."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import click

from ..costmodel import ModelSpec, find_model
from ..derive import parse_window
from ..engine_config import EngineConfig, parse_engine_flag
from ..errors import ConfigError, GpumetricsError
from ..extras import require
from ..hardware import GpuSpec, find_gpu, load_gpu_spec, with_overrides

__all__ = [
    "ADDRESS",
    "ENGINE",
    "HTTP_URL",
    "INT_LIST",
    "KEY_VALUE",
    "LISTEN_ADDRESS",
    "QUANTITY",
    "Address",
    "EngineFlag",
    "FiniteRange",
    "HttpUrl",
    "IntList",
    "KeyValue",
    "ListenAddress",
    "OutputFile",
    "Quantity",
    "block_size_option",
    "derived_window_option",
    "device_option",
    "grid_options",
    "model_option",
    "resolve_gpu",
    "resolve_model",
    "seed_option",
]

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:  # generic from click 8.4; unsubscripted at run time for older clicks
    _Type = click.ParamType[Any]
else:
    _Type = click.ParamType

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


class IntList(_Type):
    """`1,16,64` -> (1, 16, 64): positive integers, comma-separated."""

    name = "N[,N...]"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        values = []
        for raw in str(value).split(","):
            part = raw.strip()
            try:
                number = int(part)
            except ValueError:
                self.fail(f"{part!r} is not an integer", param, ctx)
            if number <= 0:
                self.fail(f"must be positive, got {number}", param, ctx)
            values.append(number)
        return tuple(values)


class Quantity(_Type):
    """`4.8T`, `4.8e12`, `141Gi`, `989.4 TFLOP/s` -> a float in base units, > 0 (SI prefixes
    k..E are powers of 1000, Ki..Ti powers of 1024; a trailing unit word is ignored)."""

    name = "QUANTITY"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        match = _QUANTITY.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a number (e.g. 4.8e12, 4.8T, 141Gi)", param, ctx)
        number = float(match.group(1)) * _SI[(match.group(2) or "").lower()]
        if number <= 0:
            self.fail(f"must be > 0, got {value!r}", param, ctx)
        return number


class OutputFile(_Type):
    """A file the command will write: its directory must exist and be writable, and the path
    must not be a directory, so a bad path fails before the work rather than after it.
    `requires` names the extra the file needs (gpumetrics/extras.py), checked before the work
    too: without it, MissingExtraError names the command, the option and the extra."""

    name = "FILE"

    def __init__(self, requires: str | None = None) -> None:
        self.requires = requires

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> Path:
        path = Path(os.fsdecode(value)) if not isinstance(value, Path) else value  # type: ignore[arg-type]
        parent = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            self.fail(f"{str(path)!r} is a directory", param, ctx)
        if not parent.is_dir():
            self.fail(f"{str(parent)!r}: no such directory", param, ctx)
        if not os.access(parent, os.W_OK | os.X_OK) or (
            path.exists() and not os.access(path, os.W_OK)
        ):
            self.fail(f"{str(path)!r} is not writable", param, ctx)
        if self.requires is not None:
            command = ctx.command_path if ctx is not None else "gpumetrics"
            option = param.opts[0] if param is not None and param.opts else "this file"
            require(self.requires, f"{command} {option}")
        return path


class Address(_Type):
    """`ADDR:PORT` -> (address, port); `[::1]:9400` for IPv6, `:9400` for 127.0.0.1."""

    name = "ADDR:PORT"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        host, sep, port = str(value).rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            self.fail(f"{value!r} is not ADDR:PORT (e.g. 127.0.0.1:9400)", param, ctx)
        return host.strip("[]") or "127.0.0.1", int(port)


class FiniteRange(click.FloatRange):
    """A FloatRange that also refuses NaN and infinities (`nan` compares false with both
    bounds, so a plain FloatRange lets it through, from a flag, the environment or TOML)."""

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> Any:
        number = super().convert(value, param, ctx)  # type: ignore[arg-type]
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


#: One label of a host name as RFC 1123 spells it: letters, digits and inner dashes.
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def _is_hostname(text: str) -> bool:
    labels = text.removesuffix(".").split(".")
    return 0 < len(text) <= 253 and all(_HOST_LABEL.match(label) for label in labels)


class ListenAddress(_Type):
    """An address to listen on: an IPv4 or IPv6 literal (`0.0.0.0`, `::`, `::1`, `[::1]`) or
    a host name; `999.1.1.1` and other malformed literals are refused before anything binds."""

    name = "ADDRESS"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        text = str(value).strip()
        bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        if ":" in bare or re.fullmatch(r"[0-9.]+", bare):
            try:
                return str(ipaddress.ip_address(bare))
            except ValueError:
                self.fail(f"{text!r} is not an IPv4 or IPv6 address", param, ctx)
        if not _is_hostname(bare):
            self.fail(f"{text!r} is not an IP address or host name", param, ctx)
        return bare


class HttpUrl(_Type):
    """An `http://` or `https://` URL with a host (and a valid port, if given)."""

    name = "URL"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        text = str(value).strip()
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            self.fail(f"{text!r}: {exc}", param, ctx)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail(f"{text!r} is not an http:// or https:// URL with a host", param, ctx)
        return text


class EngineFlag(_Type):
    """`NAME=URL[,kind=K][,model=M][,gpus=0+1][,timeout_s=S]` -> a validated EngineConfig
    (an EngineConfig from the config file passes through)."""

    name = "NAME=URL[,kind=K,model=M,gpus=0+1]"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> EngineConfig:
        if isinstance(value, EngineConfig):
            return value
        try:
            return parse_engine_flag(str(value))
        except ConfigError as exc:
            self.fail(exc.problem, param, ctx)


class KeyValue(_Type):
    """`KEY=VALUE` -> (key, value); a pair from the config file passes through."""

    name = "KEY=VALUE"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, text = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r} is not KEY=VALUE", param, ctx)
        return key.strip(), text


LISTEN_ADDRESS = ListenAddress()
HTTP_URL = HttpUrl()
INT_LIST = IntList()
QUANTITY = Quantity()
ADDRESS = Address()
ENGINE = EngineFlag()
KEY_VALUE = KeyValue()


def device_option(f: F) -> F:
    """`--device cpu|cuda` (the reference worker's torch device)."""
    return click.option(
        "--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True
    )(f)


def model_option(default: str, help: str) -> Callable[[F], F]:
    """`--model NAME_OR_CONFIG_JSON` (a cost-model preset or a Hugging Face config.json)."""
    return click.option("--model", default=default, show_default=True, help=help)


def grid_options(batch: str, context: str, context_help: str) -> Callable[[F], F]:
    """`--batch` and `--context`: the decode batch sizes and context lengths (tokens) swept."""

    def decorate(f: F) -> F:
        f = click.option(
            "--context", type=INT_LIST, default=context, show_default=True, help=context_help
        )(f)
        return click.option(
            "--batch", type=INT_LIST, default=batch, show_default=True, help="Decode batch sizes."
        )(f)

    return decorate


def block_size_option(f: F) -> F:
    """`--block-size` (tokens per KV block)."""
    return click.option(
        "--block-size",
        type=click.IntRange(min=1),
        default=16,
        show_default=True,
        help="Tokens per KV block.",
    )(f)


def _window(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_window(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


def derived_window_option(help: str) -> Callable[[F], F]:
    """`--derived-window DURATION` (`30s`, `5m`, `1h`): the derived gauges' window."""
    return click.option(
        "--derived-window",
        default="5m",
        show_default=True,
        callback=_window,
        metavar="DURATION",
        help=help,
    )


def seed_option(help: str) -> Callable[[F], F]:
    """`--seed N` (weights, and the load where there is one)."""
    return click.option("--seed", type=int, default=0, show_default=True, help=help)


def resolve_model(name: str) -> ModelSpec:
    """The model preset or config.json named by --model."""
    try:
        return find_model(name)
    except GpumetricsError as exc:
        raise click.BadParameter(str(exc), param_hint="--model") from None


def resolve_gpu(
    name: str | None,
    spec_file: Path | None = None,
    *,
    dtype: str = "bf16",
    peak_flops: float | None = None,
    hbm_bandwidth: float | None = None,
    gpu_memory: float | None = None,
) -> GpuSpec:
    """The GPU from the table (`--gpu`) or a spec file (`--gpu-spec`, which wins), with the
    flag overrides applied (FLOP/s for `dtype`, bytes/s, bytes)."""
    try:
        if spec_file is not None:
            gpu = load_gpu_spec(spec_file)
        elif name is not None:
            gpu = find_gpu(name)
        else:
            raise click.UsageError("give --gpu NAME or --gpu-spec FILE")
        if peak_flops is None and hbm_bandwidth is None and gpu_memory is None:
            return gpu
        return with_overrides(
            gpu,
            peak_flops={dtype: peak_flops} if peak_flops is not None else None,
            hbm_bandwidth=hbm_bandwidth,
            memory_bytes=gpu_memory,
        )
    except GpumetricsError as exc:
        raise click.BadParameter(
            str(exc), param_hint="--gpu-spec" if spec_file else "--gpu"
        ) from None
