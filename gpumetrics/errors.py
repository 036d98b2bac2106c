"""Typed errors. Each carries a message a user can act on; none carries a traceback's worth."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "GpumetricsError",
    "UnavailableError",
    "UnknownGpuError",
    "UnknownModelError",
]


class GpumetricsError(Exception):
    """Base class for every error gpumetrics raises on purpose."""


class ConfigError(GpumetricsError, ValueError):
    """Malformed configuration: names the key and, when known, the file it came from."""

    def __init__(self, key: str, problem: str, *, source: str | None = None) -> None:
        self.key = key
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {problem}")


class UnknownGpuError(GpumetricsError, LookupError):
    """A GPU name that the spec table does not know."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(
            f"unknown GPU {name!r}. Known GPUs: {', '.join(known)}. "
            "Override with --gpu-spec FILE (TOML or JSON with name, peak_flops, "
            "hbm_bandwidth, memory_bytes) or --peak-flops/--hbm-bandwidth/--gpu-memory."
        )


class UnknownModelError(GpumetricsError, LookupError):
    """A model preset that does not exist and is not a readable config.json."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(
            f"unknown model {name!r}. Presets: {', '.join(known)}; "
            "or pass the path of a Hugging Face config.json."
        )


class UnavailableError(GpumetricsError, RuntimeError):
    """A hardware library or file is not usable here; `hint` says what to do about it."""

    def __init__(self, what: str, reason: str, hint: str) -> None:
        self.what = what
        self.reason = reason
        self.hint = hint
        super().__init__(f"{what} unavailable: {reason} (hint: {hint})")
