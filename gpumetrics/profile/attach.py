"""Attach mode: observe a running engine over a window and summarise its efficiency.

The engine is read exactly as the sidecar reads it (`sources.engine.EngineSource`: its
/metrics through the per-engine name map, so vLLM, SGLang, TensorRT-LLM and our hooks all
work): a scrape at the start, one every `interval`, one at the end. Counter increases between
the first and the last successful scrape (`derive.counter_delta`: a restart counts from zero)
give the window's rates and ratios, the way the recording rules compute them (DESIGN.md §3.2):

tokens/s = Δstep_tokens / Δt; mean batch = Δstep_sequences / Δsteps (else the mean of the
running gauge); hit ratio = Δhit / Δqueried; FLOP/s = ΔFLOPs / Δt; bytes/s = Δ(read + write) /
Δt; intensity = ΔFLOPs / Δbytes; MFU, MBU against the GPUs' peaks x the number of GPUs; bound
= `derive.bound`; busy = Δstep_busy_seconds / Δt. A value the engine does not export (vLLM
reports FLOPs only with --enable-mfu-metrics) stays None. A scrape that fails is recorded;
if the first one fails the observation stops at once (nothing answers), later failures keep
what was gathered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..catalog import engine as e
from ..derive import Bound, bound, counter_delta, hit_ratio, mbu, mean_batch_size, mfu
from ..errors import GpumetricsError
from ..samples import Collection
from ..sources import Source
from .analysis import Roof
from .measure import GpuActivity, MeasureWindow, NullWindow

__all__ = [
    "AttachSummary",
    "Observation",
    "Scrape",
    "attach_verdict",
    "observe",
    "scrape_of",
    "summarize",
]

_COUNTERS: Mapping[str, str] = {
    e.STEPS.name: "steps",
    e.STEP_SEQUENCES.name: "step_sequences",
    e.STEP_BUSY.name: "busy_seconds",
    e.FLOPS.name: "flops",
    e.READ_BYTES.name: "read_bytes",
    e.WRITE_BYTES.name: "write_bytes",
    e.PREFIX_QUERIED.name: "prefix_queried",
    e.PREFIX_HIT.name: "prefix_hit",
    e.GENERATED_TOKENS.name: "generated_tokens",
    e.PREEMPTIONS.name: "preemptions",
}


@dataclass(frozen=True, slots=True)
class Scrape:
    """One successful scrape at monotonic time `at` (s): counter totals summed over the
    engine's series (`step_tokens_prefill`/`_decode` split by phase), gauges, engine info."""

    at: float
    totals: Mapping[str, float]
    kv_usage: float | None
    running: float | None
    kind: str | None
    model: str | None


@dataclass(frozen=True, slots=True)
class Observation:
    """What a window of scrapes gathered: the successful scrapes, the failures as
    (seconds into the window, message), the window asked for, and the GPU activity."""

    scrapes: tuple[Scrape, ...]
    failures: tuple[tuple[float, str], ...]
    requested_seconds: float
    gpu: GpuActivity | None = None


@dataclass(frozen=True, slots=True)
class AttachSummary:
    """The efficiency of an engine over a window (rates per second, ratios 0..1; None where
    the engine does not export the inputs or no two scrapes succeeded)."""

    window_seconds: float
    scrapes: int
    failures: tuple[tuple[float, str], ...]
    kind: str | None
    model: str | None
    tokens_per_second: float | None
    prefill_tokens_per_second: float | None
    decode_tokens_per_second: float | None
    steps_per_second: float | None
    mean_batch: float | None
    hit_ratio: float | None
    kv_usage: float | None
    busy_ratio: float | None
    flops_per_second: float | None
    bytes_per_second: float | None
    intensity: float | None
    mfu: float | None
    mbu: float | None
    bound: Bound | None
    gpus: int
    gpu: GpuActivity | None

    @property
    def complete(self) -> bool:
        """At least two scrapes and no failure."""
        return self.scrapes >= 2 and not self.failures


def scrape_of(collection: Collection, at: float) -> Scrape:
    """Totals and gauges of one mapped engine collection."""
    totals: dict[str, float] = {}
    kv: list[float] = []
    running = 0.0
    has_running = False
    kind = model = None
    for sample in collection.samples:
        value = sample.value
        if not isinstance(value, int | float):
            continue
        key = _COUNTERS.get(sample.metric)
        if key is not None:
            totals[key] = totals.get(key, 0.0) + value
        elif sample.metric == e.STEP_TOKENS.name:
            phase = sample.labels[-1]
            totals[f"step_tokens_{phase}"] = totals.get(f"step_tokens_{phase}", 0.0) + value
        elif sample.metric == e.KV_USAGE.name:
            kv.append(value)
        elif sample.metric == e.RUNNING_SEQUENCES.name:
            running, has_running = running + value, True
        elif sample.metric == e.ENGINE_INFO.name:
            model, kind = sample.labels[1], sample.labels[2]
    return Scrape(
        at, totals, sum(kv) / len(kv) if kv else None, running if has_running else None, kind, model
    )


def observe(
    source: Source,
    duration: float,
    *,
    interval: float | None = None,
    window: MeasureWindow | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[float], None] | None = None,
) -> Observation:
    """Scrape `source` at the start, every `interval` s (default: duration / 4, at most 5 s)
    and at the end of `duration` s; `window` brackets the whole time (GPU activity);
    `progress(elapsed)` is called after each scrape."""
    if not duration > 0:
        raise ValueError(f"duration must be > 0, got {duration}")
    step = interval if interval is not None else min(5.0, duration / 4)
    gpu_window = window or NullWindow()
    scrapes: list[Scrape] = []
    failures: list[tuple[float, str]] = []
    start = clock()
    gpu_window.begin()
    next_at = start
    while True:
        now = clock()
        try:
            scrapes.append(scrape_of(source.collect(wall()), now))
        except GpumetricsError as exc:
            failures.append((now - start, str(exc)))
            if not scrapes:
                break  # nothing answers: do not wait out the window
        if progress is not None:
            progress(now - start)
        if now - start >= duration:
            break
        next_at = min(next_at + step, start + duration)
        sleep(max(0.0, next_at - clock()))
    gpu_window.end()
    return Observation(tuple(scrapes), tuple(failures), duration, gpu_window.activity())


def summarize(observation: Observation, roof: Roof | None, *, gpus: int = 1) -> AttachSummary:
    """The window's rates, ratios and efficiency (see the module docstring); `roof` is one
    GPU's peaks (None: MFU, MBU and bound are not computed)."""
    scrapes = observation.scrapes
    first, last = (scrapes[0], scrapes[-1]) if scrapes else (None, None)
    seconds = last.at - first.at if first and last else 0.0

    def delta(key: str) -> float | None:
        if not (first and last) or seconds <= 0:
            return None
        if key not in first.totals or key not in last.totals:
            return None
        return counter_delta(first.totals[key], last.totals[key])

    def rate(value: float | None) -> float | None:
        return value / seconds if value is not None and seconds > 0 else None

    prefill, decode = delta("step_tokens_prefill"), delta("step_tokens_decode")
    tokens = None if prefill is None and decode is None else (prefill or 0.0) + (decode or 0.0)
    steps, sequences = delta("steps"), delta("step_sequences")
    flops = delta("flops")
    read, write = delta("read_bytes"), delta("write_bytes")
    moved = None if read is None else read + (write or 0.0)
    queried, hits = delta("prefix_queried"), delta("prefix_hit")
    busy = delta("busy_seconds")
    running = [s.running for s in scrapes if s.running is not None]
    kv = [s.kv_usage for s in scrapes if s.kv_usage is not None]
    batch = mean_batch_size(sequences, steps) if sequences is not None and steps else None
    if batch is None and running:
        batch = sum(running) / len(running)
    flops_rate, bytes_rate = rate(flops), rate(moved)
    peak = roof.peak_flops * gpus if roof else None
    bandwidth = roof.bandwidth * gpus if roof else None
    return AttachSummary(
        window_seconds=seconds,
        scrapes=len(scrapes),
        failures=observation.failures,
        kind=last.kind if last else None,
        model=last.model if last else None,
        tokens_per_second=rate(tokens),
        prefill_tokens_per_second=rate(prefill),
        decode_tokens_per_second=rate(decode),
        steps_per_second=rate(steps),
        mean_batch=batch,
        hit_ratio=hit_ratio(hits, queried) if hits is not None and queried is not None else None,
        kv_usage=sum(kv) / len(kv) if kv else None,
        busy_ratio=min(1.0, busy / seconds) if busy is not None and seconds > 0 else None,
        flops_per_second=flops_rate,
        bytes_per_second=bytes_rate,
        intensity=flops / moved if flops is not None and moved else None,
        mfu=mfu(flops_rate, peak) if flops_rate is not None and peak else None,
        mbu=mbu(bytes_rate, bandwidth) if bytes_rate is not None and bandwidth else None,
        bound=(
            bound(flops, moved, peak, bandwidth)
            if flops is not None and moved and peak and bandwidth
            else None
        ),
        gpus=gpus,
        gpu=observation.gpu,
    )


def attach_verdict(
    summary: AttachSummary, roof: Roof | None, *, url: str, gpu_note: str | None = None
) -> list[str]:
    """Plain sentences about the window: throughput, what bounds it, what would change it."""
    if summary.scrapes < 2:
        why = summary.failures[-1][1] if summary.failures else "fewer than two scrapes"
        return [f"No window to summarise: {url} gave {summary.scrapes} scrape(s) ({why})."]
    lines = [
        f"Over {summary.window_seconds:.1f} s: {_num(summary.tokens_per_second)} tokens/s "
        f"(prefill {_num(summary.prefill_tokens_per_second)}, decode "
        f"{_num(summary.decode_tokens_per_second)}), mean batch {_num(summary.mean_batch, 1)}, "
        f"prefix hit ratio {_pct(summary.hit_ratio)}, KV usage {_pct(summary.kv_usage)}, "
        f"busy {_pct(summary.busy_ratio)} of the time."
    ]
    if summary.intensity is None or summary.bound is None or roof is None:
        missing = (
            "the engine exports no FLOP/byte counters (vLLM: --enable-mfu-metrics and declare "
            "--gpus)"
            if summary.intensity is None
            else "no GPU peaks (give --gpu NAME)"
        )
        lines.append(f"MFU, MBU and the bound are not available: {missing}.")
    else:
        lines.append(
            f"Intensity {summary.intensity:.3g} FLOP/B vs ridge {roof.ridge:.3g}: "
            f"{summary.bound.value}-bound; MFU {_pct(summary.mfu, 1)}, MBU {_pct(summary.mbu, 1)} "
            f"({summary.gpus} GPU(s))."
        )
        full = summary.kv_usage is not None and summary.kv_usage >= 0.9
        if summary.bound is Bound.COMPUTE:
            lines.append("Compute-bound: a bigger batch buys latency, not throughput.")
        elif full:
            lines.append(
                "Memory-bound with the KV cache nearly full: the batch cannot grow without more "
                "KV memory (fp8 KV, more GPUs, shorter contexts)."
            )
        else:
            lines.append(
                "Memory-bound with KV room left: more concurrent requests (a larger max batch) "
                "would raise intensity and tokens/s."
            )
    gpu = summary.gpu
    if gpu is not None:
        lines.append(
            f"GPU counters over the window: tensor active {_pct(gpu.tensor_active)}, DRAM active "
            f"{_pct(gpu.dram_active)}, naive utilization {_pct(gpu.utilization_naive)}."
        )
    else:
        lines.append(f"GPU counters (NVML/GPM): {gpu_note or 'not available'}.")
    if summary.failures:
        at, message = summary.failures[0]
        lines.append(
            f"{len(summary.failures)} scrape(s) failed (first {at:.1f} s in: {message}); the "
            f"numbers cover the {summary.scrapes} successful ones."
        )
    return lines


def _num(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:.{digits}%}"
