"""What a profile measures, as plain records: cells, timed steps, calibration, GPU activity.

Torch-free on purpose: the reference worker (`gpumetrics.worker.cell_runner`, `.calibrate`) fills
these records and the profile report reads them, so the analysis, the reports and their tests
run without torch. Everything is in base units: seconds, FLOPs, bytes, ratios in 0..1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = [
    "DECODE",
    "PHASES",
    "PREFILL",
    "Calibration",
    "CellMeasurement",
    "CellSkipped",
    "CellSpec",
    "DeviceInfo",
    "GpuActivity",
    "KvPool",
    "MeasureWindow",
    "NullWindow",
    "StepPlan",
    "StepRecord",
    "percentile",
]

DECODE: Final = "decode"
PREFILL: Final = "prefill"
#: Cell phases: pure decode steps, or prefill steps of a fixed chunk size.
PHASES: Final = (DECODE, PREFILL)


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0..100) by linear interpolation between closest ranks (numpy's
    default); ValueError on an empty sequence."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class CellSpec:
    """One sweep cell.

    decode: `batch` sequences decode together, each with about `context` tokens in its KV
    cache (the measured steps' contexts run from `context` upwards, one token per step).
    prefill: prompts of `context` tokens, `batch` of them arriving together, computed in
    steps of at most `chunk` new tokens (the engine's chunked-prefill token budget).
    """

    phase: str
    batch: int
    context: int
    chunk: int | None = None

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {self.phase!r}")
        if self.batch <= 0 or self.context <= 0:
            raise ValueError(f"batch and context must be > 0, got {self.batch}, {self.context}")
        if (self.phase == PREFILL) != (self.chunk is not None):
            raise ValueError("a prefill cell needs a chunk; a decode cell has none")
        if self.chunk is not None and self.chunk <= 0:
            raise ValueError(f"chunk must be > 0, got {self.chunk}")

    @property
    def label(self) -> str:
        """Short name for tables and plots: `b4/c128`, `prefill k256/c512`."""
        if self.phase == DECODE:
            return f"b{self.batch}/c{self.context}"
        return f"prefill k{self.chunk}/c{self.context}"


@dataclass(frozen=True, slots=True)
class StepPlan:
    """How many steps a cell runs: `warmup` steps discarded, then at least `steps` timed
    steps, continued until `min_seconds` of timed steps (a GPU activity window needs >= 0.1 s)
    but never past `max_steps` timed steps."""

    steps: int = 16
    warmup: int = 2
    min_seconds: float = 0.0
    max_steps: int = 256

    def __post_init__(self) -> None:
        if self.steps <= 0 or self.warmup < 0:
            raise ValueError(f"need steps > 0 and warmup >= 0, got {self.steps}, {self.warmup}")
        if self.min_seconds < 0:
            raise ValueError(f"min_seconds must be >= 0, got {self.min_seconds}")
        if self.max_steps < self.steps:
            raise ValueError(f"max_steps ({self.max_steps}) < steps ({self.steps})")

    @property
    def step_cap(self) -> int:
        """Most timed steps a cell may take."""
        return self.max_steps if self.min_seconds > 0 else self.steps


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One timed engine step: wall `seconds` (schedule + forward + sample, synchronised on
    CUDA), the cost model's `flops` and HBM `bytes` (read + write) of the work the scheduler
    really ran, new `tokens` computed and `sequences` scheduled; `context` the mean KV tokens
    per sequence after the step (None when not tracked)."""

    seconds: float
    flops: float
    bytes: float
    tokens: int
    sequences: int
    context: float | None = None


@dataclass(frozen=True, slots=True)
class GpuActivity:
    """Measured GPU activity over a window (NVML/GPM; `nvidia-smi dmon`, `dcgmi dmon -e
    1004,1005`): tensor pipes busy, HBM bandwidth used over peak, SMs busy, and naive
    utilization (`nvidia-smi --query-gpu=utilization.gpu`: a kernel ran). Ratios in 0..1,
    None where the GPU does not report it; `seconds` is the window length."""

    tensor_active: float | None
    dram_active: float | None
    sm_active: float | None
    utilization_naive: float | None
    seconds: float


@dataclass(frozen=True, slots=True)
class CellMeasurement:
    """A cell that ran: its timed steps, the KV it held, and GPU activity if sampled."""

    cell: CellSpec
    steps: tuple[StepRecord, ...]
    kv_used_blocks: int
    """KV blocks held by the cell's sequences at the end of the timed steps."""
    kv_used_bytes: float
    gpu: GpuActivity | None = None

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"cell {self.cell.label}: no timed steps")

    @property
    def seconds(self) -> float:
        """Total timed seconds."""
        return math.fsum(s.seconds for s in self.steps)

    @property
    def step_seconds(self) -> tuple[float, ...]:
        return tuple(s.seconds for s in self.steps)

    @property
    def p50(self) -> float:
        """Median step time (s)."""
        return percentile(self.step_seconds, 50)

    @property
    def p95(self) -> float:
        """95th percentile step time (s)."""
        return percentile(self.step_seconds, 95)

    @property
    def mean_seconds(self) -> float:
        return self.seconds / len(self.steps)

    @property
    def flops_per_step(self) -> float:
        return math.fsum(s.flops for s in self.steps) / len(self.steps)

    @property
    def bytes_per_step(self) -> float:
        return math.fsum(s.bytes for s in self.steps) / len(self.steps)

    @property
    def tokens_per_second(self) -> float:
        """New tokens computed per second at the median step time (decode: output tokens/s):
        mean tokens per step ÷ p50."""
        return sum(s.tokens for s in self.steps) / len(self.steps) / self.p50

    @property
    def mean_sequences(self) -> float:
        return sum(s.sequences for s in self.steps) / len(self.steps)

    @property
    def mean_context(self) -> float | None:
        """Mean KV tokens per sequence over the timed steps (None when not tracked)."""
        known = [s.context for s in self.steps if s.context is not None]
        return math.fsum(known) / len(known) if known else None


class CellSkipped(Exception):  # noqa: N818 - it is an outcome, not a failure of the sweep
    """A cell that cannot run here (KV blocks insufficient, device out of memory); the
    message says why, and the sweep carries on with the other cells."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """Achievable peaks measured on the device itself: a square `matmul_size`³ matmul in
    `dtype` (FLOP/s, 2·n³ per matmul) and a `copy_bytes` tensor copy (bytes/s, read + write
    counted), the best of `trials` timed runs each."""

    device: str
    dtype: str
    matmul_flops: float
    copy_bandwidth: float
    matmul_size: int
    copy_bytes: int
    trials: int

    @property
    def ridge(self) -> float:
        """FLOPs per byte where the two achievable roofs meet."""
        return self.matmul_flops / self.copy_bandwidth


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The device a sweep ran on: `kind` cpu|cuda, its name (`torch.cuda.get_device_name`,
    or the CPU model), the GPU UUID as NVML spells it ("GPU-..."), the compute dtype."""

    kind: str
    name: str
    dtype: str
    uuid: str | None = None
    torch_version: str = ""
    threads: int | None = None


@dataclass(frozen=True, slots=True)
class KvPool:
    """The worker's paged KV pool for a sweep: `blocks` allocated of `block_size` tokens,
    `bytes_per_token` of KV, and `budget_blocks` the most the device allows (how it was
    derived in `budget_source`). A cell whose sequences need more blocks than the pool is
    skipped."""

    blocks: int
    block_size: int
    bytes_per_token: float
    budget_blocks: int
    budget_source: str

    @property
    def budget_tokens(self) -> int:
        return self.budget_blocks * self.block_size

    @property
    def bytes(self) -> float:
        """Bytes of the allocated pool."""
        return self.blocks * self.block_size * self.bytes_per_token


class MeasureWindow(Protocol):
    """Brackets a cell's timed steps: the runner calls `begin()` right before the first timed
    step and `end()` right after the last, and keeps timing until at least `min_seconds`
    have passed (GPM needs >= 0.1 s between its two samples)."""

    @property
    def min_seconds(self) -> float: ...

    def begin(self) -> None: ...

    def end(self) -> None: ...

    def activity(self) -> GpuActivity | None: ...


class NullWindow:
    """No GPU sampling (CPU runs, or NVML not available)."""

    @property
    def min_seconds(self) -> float:
        return 0.0

    def begin(self) -> None:
        """Nothing to start."""

    def end(self) -> None:
        """Nothing to stop."""

    def activity(self) -> GpuActivity | None:
        return None
