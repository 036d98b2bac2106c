"""Does a model fit the device it is about to be loaded on? Checked before anything allocates.

A model too large for the machine does not fail cleanly when it is loaded: on a CPU the
kernel overcommits, so initialising the weights grows the process by hundreds of MB/s until
the OOM killer or swap stops the machine. `worker` and `profile` call `check_fit` at command
start instead, with what the device has (`host_memory_available`: the kernel's MemAvailable;
CUDA: the free memory the caller reads from the driver) and what the run needs:

    need = weights (all parameters x dtype bytes)
         + KV (tokens of the pool x 2·L·Hkv·d x dtype bytes)
         + activations of the largest step (`activations.activation_bytes`)

Torch-free (the CPU check runs before torch is imported, in milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import GpumetricsError
from ..units import KIB, format_bytes
from .activations import activation_bytes
from .spec import ModelSpec, dtype_bytes

__all__ = [
    "MEMINFO",
    "DoesNotFitError",
    "MemoryNeed",
    "check_fit",
    "host_memory_available",
    "memory_need",
    "parse_mem_available",
]

#: Where the kernel reports memory (`free -b`'s "available" column comes from here).
MEMINFO = Path("/proc/meminfo")


class DoesNotFitError(GpumetricsError, MemoryError):
    """The model and its KV cache need more memory than the device has; one line."""


@dataclass(frozen=True, slots=True)
class MemoryNeed:
    """Bytes a run needs on its device, by part."""

    weights: float
    kv: float
    activations: float
    dtype: str

    @property
    def total(self) -> float:
        return self.weights + self.kv + self.activations


def memory_need(
    model: ModelSpec,
    *,
    dtype: str,
    kv_tokens: int,
    step_tokens: int,
    sampling_sequences: int = 1,
) -> MemoryNeed:
    """What loading `model` in `dtype` with a `kv_tokens` KV pool and steps of up to
    `step_tokens` tokens (`sampling_sequences` of them sampling) takes."""
    return MemoryNeed(
        weights=model.weight_bytes(dtype),
        kv=kv_tokens * model.kv_bytes_per_token(dtype),
        activations=activation_bytes(
            model,
            max(1, step_tokens),
            sampling_sequences=sampling_sequences,
            act_dtype=dtype if dtype_bytes(dtype) >= 2 else "bf16",
        ),
        dtype=dtype,
    )


def parse_mem_available(text: str) -> int | None:
    """MemAvailable in bytes from /proc/meminfo text (`MemAvailable:  23480640 kB`)."""
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key == "MemAvailable":
            fields = rest.split()
            if fields and fields[0].isdigit():
                scale = KIB if len(fields) > 1 and fields[1] == "kB" else 1
                return int(fields[0]) * scale
    return None


def host_memory_available(path: Path = MEMINFO) -> int | None:
    """Bytes the kernel says can be allocated without swapping, or None where it does not
    say (no /proc, a kernel older than 3.14)."""
    try:
        return parse_mem_available(path.read_text(encoding="ascii", errors="replace"))
    except OSError:
        return None


def check_fit(model: ModelSpec, need: MemoryNeed, available: float, *, where: str) -> None:
    """DoesNotFitError, one line, when `need` exceeds the `available` bytes `where` says
    whose they are (`the CPU (MemAvailable)`, `cuda:0 (free)`)."""
    if need.total <= available:
        return
    raise DoesNotFitError(
        f"{model.name} does not fit: weights {format_bytes(need.weights)} ({need.dtype}) + KV "
        f"{format_bytes(need.kv)} + activations {format_bytes(need.activations)} = "
        f"{format_bytes(need.total)}, but {where} has {format_bytes(available)}; use a smaller "
        "--model, fewer --kv-blocks, or a device with more memory"
    )
