"""The optional dependencies ("extras") and the one way the package loads them.

`pip install gpumetrics` gives the standard-library hooks, the exporter (`serve`: NVML,
prometheus-client, PyYAML) and the command line (click, rich). Everything else is an extra of
pyproject.toml; code that needs one calls `require(extra, feature)` before importing the module
that imports the library, so a missing extra is one typed error naming the pip command, which
the CLI prints as one line with exit code 2:

    gpumetrics render needs the 'render' extra: pip install 'gpumetrics[render]'

tests/test_boundaries.py holds every other module to it: an optional library is imported at
module level only by the modules listed there for its extra, and those modules are imported
only after `require` (or lazily, as `kvsize` does).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType, ModuleType
from typing import Any

from .errors import GpumetricsError

__all__ = ["EXTRAS", "Extra", "LazyModule", "MissingExtraError", "available", "require"]


@dataclass(frozen=True, slots=True)
class Extra:
    """One extra of pyproject.toml: `name` as pip spells it, the import names it provides
    (`modules`, all needed; the first is what `require` returns) and what it is for."""

    name: str
    modules: tuple[str, ...]
    purpose: str


#: Every extra with something to import (pyproject.toml's `[project.optional-dependencies]`;
#: tests/test_packaging.py holds the two equal). `all` and `dev` import nothing of their own.
EXTRAS: Mapping[str, Extra] = MappingProxyType(
    {
        "otel": Extra(
            "otel",
            ("opentelemetry.sdk.metrics", "opentelemetry.exporter.otlp.proto.http"),
            "OTLP/HTTP push (serve --otlp-endpoint)",
        ),
        "render": Extra(
            "render", ("grafana_foundation_sdk",), "generated dashboards (gpumetrics render)"
        ),
        "web": Extra("web", ("bcrypt",), "basic auth in --web-config (TLS itself is stdlib)"),
        "k8s": Extra(
            "k8s", ("grpc", "google.protobuf"), "pod attribution (kubelet PodResources gRPC)"
        ),
        "worker": Extra("worker", ("torch",), "the reference worker and profile sweeps"),
        "plot": Extra("plot", ("matplotlib",), "PNG plots and HTML reports"),
        "kvsize": Extra(
            "kvsize",
            ("numpy", "tokenizers"),
            "gpumetrics kv-size: vectorised curves, Hugging Face tokenizer.json",
        ),
    }
)


class MissingExtraError(GpumetricsError, ImportError):
    """`feature` needs `extra`, which is not installed (or does not import: `reason`)."""

    def __init__(self, feature: str, extra: str, reason: str = "") -> None:
        self.feature = feature
        self.extra = extra
        self.reason = reason
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"{feature} needs the '{extra}' extra: pip install 'gpumetrics[{extra}]'{why}"
        )


def _not_installed(exc: ImportError, module: str) -> bool:
    """True when `exc` says `module` (or a package above it) is simply absent, not broken."""
    missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
    return missing is not None and (module == missing or module.startswith(missing + "."))


def require(extra: str, feature: str, module: str | None = None) -> ModuleType:
    """Import every module of `extra` and return `module` (one of them; default the first).
    MissingExtraError names `feature` (e.g. "gpumetrics render") and the pip command; when a
    module is installed but fails to import (a broken build, a missing shared library), the
    message adds the reason."""
    spec = EXTRAS[extra]
    if module is not None and module not in spec.modules:
        raise KeyError(f"the {extra!r} extra provides {spec.modules}, not {module!r}")
    loaded: dict[str, ModuleType] = {}
    for name in spec.modules:
        try:
            loaded[name] = importlib.import_module(name)
        except ImportError as exc:
            reason = "" if _not_installed(exc, name) else f"{name}: {exc}"
            raise MissingExtraError(feature, extra, reason) from exc
        except OSError as exc:  # torch raises OSError for a missing CUDA library
            raise MissingExtraError(feature, extra, f"{name}: {exc}") from exc
    return loaded[module if module is not None else spec.modules[0]]


def available(extra: str) -> bool:
    """True when `require(extra, ...)` would succeed (it imports the extra's modules)."""
    try:
        require(extra, extra)
    except MissingExtraError:
        return False
    return True


class LazyModule:
    """A module-level stand-in for an extra's first module, imported on first attribute use
    (`bcrypt = LazyModule("web", "basic auth")`; `bcrypt.checkpw(...)`), so that importing the
    module that holds it needs no extra. Callers `require` the extra up front where a missing
    extra should fail early (serve does, when the web config has users)."""

    __slots__ = ("_extra", "_feature", "_module")

    def __init__(self, extra: str, feature: str) -> None:
        if extra not in EXTRAS:
            raise KeyError(f"unknown extra {extra!r}")
        self._extra = extra
        self._feature = feature
        self._module: ModuleType | None = None

    def __getattr__(self, name: str) -> Any:
        if self._module is None:
            self._module = require(self._extra, self._feature)
        return getattr(self._module, name)
