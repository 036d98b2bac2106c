"""The sidecar's configuration file (TOML); the web config (Prometheus' YAML format) lives in
`web_config` and is re-exported here.

Precedence, highest first (documented in docs/configuration.md): command-line flags,
environment variables (`GPUMETRICS_SERVE_<OPTION>`, e.g. GPUMETRICS_SERVE_PORT=9835), the
config file, built-in defaults. A list given on the command line (engines, include, exclude)
replaces the file's list rather than merging with it.

Every error names the key and the file: `gpumetrics.toml: engines[1].url: required key missing`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from types import MappingProxyType

from .catalog import MetricSpec
from .engine_config import LIMIT_KEYS, EngineConfig
from .errors import ConfigError
from .web_config import CLIENT_AUTH_TYPES, WebConfig, load_web_config

__all__ = [
    "CLIENT_AUTH_TYPES",
    "FileConfig",
    "WebConfig",
    "load_config",
    "load_web_config",
    "select_specs",
]

#: [section] key -> (`serve` option name, accepted Python types).
_OPTIONS: Mapping[str, Mapping[str, tuple[str, tuple[type, ...]]]] = MappingProxyType(
    {
        "serve": {
            "address": ("address", (str,)),
            "port": ("port", (int,)),
            "interval": ("interval", (int, float)),
            "derived_window": ("derived_window", (str,)),
            "require_gpu": ("require_gpu", (bool,)),
            "log_level": ("log_level", (str,)),
        },
        "sources": {
            "nvml": ("nvml", (bool,)),
            "gpm": ("gpm", (bool,)),
            "nvlink_per_link": ("nvlink_per_link", (bool,)),
            "infiniband": ("infiniband", (bool,)),
            "ib_root": ("ib_root", (str,)),
            "process_memory": ("process_memory", (bool,)),
            "gpu": ("gpu", (str,)),
            "fake_gpus": ("fake_gpus", (str,)),
            "fake_workload": ("fake_workload", (str,)),
            "fake_ib": ("fake_ib", (int,)),
            "pod_attribution": ("pod_attribution", (str,)),
            "kubelet_socket": ("kubelet_socket", (str,)),
        },
        "otlp": {
            "endpoint": ("otlp_endpoint", (str,)),
            "interval": ("otlp_interval", (int, float)),
        },
        "web": {
            "config": ("web_config", (str,)),
            "max_connections": ("max_connections", (int,)),
        },
    }
)
_LISTS = {"metrics": ("include", "exclude")}
_ENGINE_KEYS = {
    "name": str,
    "url": str,
    "kind": str,
    "model": str,
    "gpus": list,
    "timeout_s": (int, float),
    **dict.fromkeys(LIMIT_KEYS, int),
}


@dataclass(frozen=True, slots=True)
class FileConfig:
    """What a config file says: flat option defaults (by `serve` option name), engines,
    metric selection and OTLP headers."""

    options: Mapping[str, object] = field(default_factory=dict)
    engines: tuple[EngineConfig, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    otlp_headers: Mapping[str, str] = field(default_factory=dict)


def _check(value: object, types: tuple[type, ...] | type, key: str, source: str) -> None:
    types = types if isinstance(types, tuple) else (types,)
    # bool is an int to isinstance; a TOML `true` is not a port number.
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = " or ".join(t.__name__ for t in types)
        raise ConfigError(key, f"must be {names}, got {value!r}", source=source)


def _engine(raw: object, index: int, source: str) -> EngineConfig:
    where = f"engines[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(where, "must be a table ([[engines]])", source=source)
    for key, value in raw.items():
        if key not in _ENGINE_KEYS:
            raise ConfigError(
                f"{where}.{key}", f"unknown key; known: {', '.join(_ENGINE_KEYS)}", source=source
            )
        _check(value, _ENGINE_KEYS[key], f"{where}.{key}", source)  # type: ignore[arg-type]
    for required in ("name", "url"):
        if required not in raw:
            raise ConfigError(f"{where}.{required}", "required key missing", source=source)
    gpus = raw.get("gpus", [])
    for position, gpu in enumerate(gpus):
        _check(gpu, (str, int), f"{where}.gpus[{position}]", source)
    given = {k: v for k, v in raw.items() if k not in ("gpus", "timeout_s")}
    if "timeout_s" in raw:
        given["timeout_s"] = float(raw["timeout_s"])
    try:
        return EngineConfig(**given, gpus=tuple(str(g) for g in gpus))
    except ConfigError as exc:  # EngineConfig names the field; add where and the file
        raise ConfigError(f"{where}.{exc.key}", exc.problem, source=source) from None


def load_config(path: Path) -> FileConfig:
    """Read and validate a TOML config file."""
    source = str(path)
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError("config", f"cannot read: {exc.strerror}", source=source) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            "config", f"not UTF-8 (byte {exc.start}): TOML files are UTF-8", source=source
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"not valid TOML: {exc}", source=source) from exc
    options: dict[str, object] = {}
    engines: tuple[EngineConfig, ...] = ()
    lists: dict[str, tuple[str, ...]] = {}
    headers: dict[str, str] = {}
    known = [*_OPTIONS, *_LISTS, "engines"]
    for section, body in data.items():
        if section == "engines":
            if not isinstance(body, list):
                raise ConfigError(
                    "engines", "must be an array of tables ([[engines]])", source=source
                )
            engines = tuple(_engine(raw, i, source) for i, raw in enumerate(body))
            continue
        if section not in known:
            raise ConfigError(section, f"unknown section; known: {', '.join(known)}", source=source)
        if not isinstance(body, dict):
            raise ConfigError(section, "must be a table", source=source)
        for key, value in body.items():
            where = f"{section}.{key}"
            if section in _LISTS and key in _LISTS[section]:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ConfigError(where, "must be a list of strings", source=source)
                lists[key] = tuple(value)
            elif section == "otlp" and key == "headers":
                if not isinstance(value, dict) or not all(
                    isinstance(v, str) for v in value.values()
                ):
                    raise ConfigError(where, "must be a table of strings", source=source)
                headers = {str(k): str(v) for k, v in value.items()}
            elif section in _OPTIONS and key in _OPTIONS[section]:
                option, types = _OPTIONS[section][key]
                _check(value, types, where, source)
                options[option] = (
                    _relative(path, value) if option in ("web_config", "ib_root") else value
                )
            elif (section, key) == ("sources", "gpu_spec"):
                raise ConfigError(
                    where,
                    "renamed sources.gpu (a spec-table key or NVML name; `serve --gpu`); "
                    "--gpu-spec FILE is roofline's GPU spec file",
                    source=source,
                )
            else:
                choices = [*_OPTIONS.get(section, {}), *_LISTS.get(section, ())]
                if section == "otlp":
                    choices.append("headers")
                raise ConfigError(where, f"unknown key; known: {', '.join(choices)}", source=source)
    return FileConfig(options, engines, lists.get("include", ()), lists.get("exclude", ()), headers)


def _relative(config: Path, value: object) -> str:
    """A path in a config file is relative to the file's directory."""
    path = Path(str(value))
    return str(path if path.is_absolute() else config.parent / path)


def select_specs(
    specs: tuple[MetricSpec, ...], include: tuple[str, ...], exclude: tuple[str, ...]
) -> tuple[MetricSpec, ...]:
    """Catalog entries whose name matches an `include` glob (all when none) and no `exclude`
    glob. A pattern that matches nothing is an error: it is almost always a typo."""
    for pattern in (*include, *exclude):
        if not any(fnmatchcase(s.name, pattern) for s in specs):
            raise ConfigError("metrics", f"pattern {pattern!r} matches no metric (see METRICS.md)")
    return tuple(
        spec
        for spec in specs
        if (not include or any(fnmatchcase(spec.name, p) for p in include))
        and not any(fnmatchcase(spec.name, p) for p in exclude)
    )
