"""What the sidecar knows about one engine: where its /metrics is, what it runs, on which GPUs.

The one engine configuration type: the config file's `[[engines]]`, `serve --engine` and
`profile --engine` all build an `EngineConfig`, which validates itself, and the scrape bridge
(`sources/engine`) reads it. Standard library only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = [
    "AUTO",
    "DEFAULT_MAX_LABELS",
    "DEFAULT_MAX_LABEL_VALUES",
    "DEFAULT_MAX_LABEL_VALUE_LENGTH",
    "DEFAULT_MAX_SERIES",
    "DEFAULT_PATH",
    "KINDS",
    "LIMIT_KEYS",
    "MAX_TIMEOUT_S",
    "Endpoint",
    "EngineConfig",
    "GpuRef",
    "parse_engine_flag",
]

#: Engine kinds with a name map; `kind` in the config is one of these or AUTO.
KINDS: Final = ("gpumetrics", "vllm", "sglang", "trtllm")
#: Detect the kind from the metric name prefixes of each scrape.
AUTO: Final = "auto"
#: The path used when the URL has none (`http://127.0.0.1:8000` -> `/metrics`).
DEFAULT_PATH: Final = "/metrics"
#: The longest `timeout_s` accepted (seconds): a scrape longer than this is a mistake.
MAX_TIMEOUT_S: Final = 600.0
#: Page limits (sources/engine/limits.py says what each bounds and its error code).
DEFAULT_MAX_SERIES: Final = 10_000
DEFAULT_MAX_LABEL_VALUE_LENGTH: Final = 1024
DEFAULT_MAX_LABELS: Final = 128
DEFAULT_MAX_LABEL_VALUES: Final = 1000
#: The integer limits an engine's config may set, and their defaults.
LIMIT_KEYS: Final = (
    "max_bytes",
    "max_series",
    "max_label_value_length",
    "max_labels",
    "max_label_values",
)

_INDEX = re.compile(r"^[0-9]+$")
_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Za-z/_.-]+$")


@dataclass(frozen=True, slots=True)
class GpuRef:
    """One declared GPU: its index (`nvidia-smi --query-gpu=index`) and/or UUID
    (`nvidia-smi --query-gpu=uuid`); "" where not given."""

    index: str
    uuid: str

    @classmethod
    def parse(cls, text: str) -> GpuRef:
        """`"0"`, `"GPU-5d3c..."` (or `"MIG-..."`), or both as `"0:GPU-5d3c..."`."""
        index, sep, uuid = text.strip().partition(":")
        if sep:
            if _INDEX.match(index) and _UUID.match(uuid):
                return cls(index, uuid)
        elif _INDEX.match(index):
            return cls(index, "")
        elif _UUID.match(index):
            return cls("", index)
        raise ConfigError("gpus", f"{text!r} is not a GPU index, a GPU-/MIG- UUID or INDEX:UUID")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to GET the exposition: scheme http|https, host, port, path with query."""

    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Split `url`; the path defaults to DEFAULT_PATH when the URL has none."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigError("url", f"{url!r}: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise ConfigError("url", f"{url!r}: scheme must be http or https")
        if not parts.hostname:
            raise ConfigError("url", f"{url!r}: no host")
        path = parts.path or DEFAULT_PATH
        if parts.query:
            path = f"{path}?{parts.query}"
        default_port = 443 if parts.scheme == "https" else 80
        return cls(parts.scheme, parts.hostname, port or default_port, path)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """One engine to scrape.

    `name` becomes the `engine` label of every series and the source name `engine:<name>`.
    `kind` picks the name map (`KINDS`) or "auto". `model` is the fallback `model` label: the
    engine's own model label wins (vLLM and SGLang `model_name`, our hooks' `model`), and series
    without one take the one model the engine names; for TensorRT-LLM on Triton, whose `model`
    label is the Triton model ("tensorrt_llm"), `model` wins. `gpus` are the GPUs the engine
    runs on, as indexes, UUIDs or INDEX:UUID pairs. `max_bytes` and `timeout_s` (seconds,
    at most MAX_TIMEOUT_S) bound one scrape (connect + request + whole body); `max_series`,
    `max_label_value_length`, `max_labels` and `max_label_values` bound what one page may hold
    (sources/engine/limits.py: over a limit the cycle is rejected and the last good samples
    are kept, marked stale).
    """

    name: str
    url: str
    kind: str = AUTO
    model: str | None = None
    gpus: tuple[str, ...] = ()
    max_bytes: int = 16 << 20
    timeout_s: float = 2.0
    max_series: int = DEFAULT_MAX_SERIES
    max_label_value_length: int = DEFAULT_MAX_LABEL_VALUE_LENGTH
    max_labels: int = DEFAULT_MAX_LABELS
    max_label_values: int = DEFAULT_MAX_LABEL_VALUES

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip():
            raise ConfigError("name", f"{self.name!r}: must be non-empty, without edge spaces")
        if self.kind not in (*KINDS, AUTO):
            raise ConfigError("kind", f"{self.kind!r}: one of {', '.join((*KINDS, AUTO))}")
        Endpoint.parse(self.url)
        object.__setattr__(self, "gpus", tuple(self.gpus))
        for gpu in self.gpus:
            GpuRef.parse(gpu)
        for key in LIMIT_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(key, f"{value!r}: must be an integer > 0")
        if not (
            isinstance(self.timeout_s, int | float)
            and not isinstance(self.timeout_s, bool)
            and math.isfinite(self.timeout_s)
            and 0 < self.timeout_s <= MAX_TIMEOUT_S
        ):
            raise ConfigError(
                "timeout_s",
                f"{self.timeout_s!r}: must be a finite number > 0 and <= {MAX_TIMEOUT_S:g} s",
            )

    @property
    def source_name(self) -> str:
        """The Sampler's name for this engine's source: `engine:<name>`."""
        return f"engine:{self.name}"

    @property
    def endpoint(self) -> Endpoint:
        """The parsed URL."""
        return Endpoint.parse(self.url)

    @property
    def gpu_refs(self) -> tuple[GpuRef, ...]:
        """The parsed `gpus`, in the order given."""
        return tuple(GpuRef.parse(gpu) for gpu in self.gpus)


#: The parts `--engine NAME=URL[,part=value...]` accepts after the URL.
_FLAG_PARTS = ("kind", "model", "gpus", "timeout_s", *LIMIT_KEYS)


def parse_engine_flag(text: str) -> EngineConfig:
    """`--engine NAME=URL[,kind=vllm][,model=M][,gpus=0+1][,timeout_s=2][,max_series=N]...`
    (and the other LIMIT_KEYS) -> an EngineConfig; a ConfigError keyed `--engine` names the
    bad part."""
    head, *rest = text.split(",")
    name, sep, url = head.partition("=")
    if not sep or not name or not url:
        raise ConfigError("--engine", f"{text!r}: expected NAME=URL[,kind=K][,model=M][,gpus=0+1]")
    extra: dict[str, str] = {}
    for part in rest:
        key, sep, value = part.partition("=")
        if not sep or key not in _FLAG_PARTS:
            raise ConfigError("--engine", f"{text!r}: unknown part {part!r}")
        extra[key] = value
    try:
        timeout_s = float(extra.get("timeout_s", 2.0))
    except ValueError:
        raise ConfigError("--engine", f"{text!r}: timeout_s must be a number") from None
    limits: dict[str, int] = {}
    for key in LIMIT_KEYS:
        if key in extra:
            try:
                limits[key] = int(extra[key])
            except ValueError:
                raise ConfigError("--engine", f"{text!r}: {key} must be an integer") from None
    try:
        return EngineConfig(
            name=name,
            url=url,
            kind=extra.get("kind", AUTO),
            model=extra.get("model"),
            gpus=tuple(g for g in extra.get("gpus", "").split("+") if g),
            timeout_s=timeout_s,
            **limits,
        )
    except ConfigError as exc:
        raise ConfigError("--engine", f"{text!r}: {exc}") from None
