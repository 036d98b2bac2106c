"""The state behind `EngineMetrics`: slotted counters, gauges and histograms, and how they
read out as catalog samples.

Every value is a plain slotted attribute (an int or float counter, a list of per-bucket counts
for a histogram), so a hook is attribute arithmetic and a `bisect`; no label dict, no object
built per call. Reading out (`collect`) is where samples and cumulative buckets are built.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from itertools import accumulate

from ..catalog import engine as cat
from ..costmodel import ModelSpec, dtype_bytes
from ..errors import ConfigError
from ..kvsize.ghost import DEFAULT_MAX_BYTES, GhostCache
from ..kvsize.hashing import sample_threshold
from ..samples import HistogramValue, Sample
from ._detail import Detail
from ._trace import TraceSink

__all__ = ["EngineState"]

log = logging.getLogger("gpumetrics.hooks")

MAX = sys.float_info.max  # `0 <= x <= MAX` rejects negatives, NaN, infinities and non-numbers
STEP_BOUNDS = cat.STEP_DURATION.buckets
TTFT_BOUNDS = cat.TTFT.buckets
ITL_BOUNDS = cat.ITL.buckets
E2E_BOUNDS = cat.E2E.buckets

#: The `capacity_factor` label values of the predicted hit ratio and the multiples of the
#: engine's KV pool they stand for.
CAPACITY_FACTORS = (("0.5", 0.5), ("2", 2.0), ("4", 4.0))

_ORDER = {spec.name: i for i, spec in enumerate(cat.ALL)}


def _label(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    return value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> '?'


def _optional_count(value: int | None, what: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{what} must be a non-negative int or None, got {value!r}")
    return value


def _histogram(bounds: tuple[float, ...], counts: list[int], total: float) -> HistogramValue:
    """Cumulative histogram from per-bucket counts (last slot: above the largest bound)."""
    cumulative = tuple(accumulate(counts[:]))  # one copy: +Inf bucket == count
    return HistogramValue(bounds, cumulative[:-1], total, cumulative[-1])


class EngineState:
    """The values of one (engine, model); `EngineMetrics` adds the hooks that update them."""

    __slots__ = (
        "_busy",
        "_cache_dtype",
        "_cached_tokens",
        "_clock",
        "_detail",
        "_dtype",
        "_e2e_counts",
        "_e2e_sum",
        "_evicted",
        "_finished",
        "_flops",
        "_generated",
        "_ghost",
        "_ghost_capacity",
        "_ghost_max_bytes",
        "_ghost_rate",
        "_hook_errors",
        "_itl_counts",
        "_itl_sum",
        "_kv_block_size",
        "_kv_capacity",
        "_kv_dtype",
        "_kv_evictable",
        "_kv_used",
        "_labels",
        "_logged",
        "_lora",
        "_max_seqs",
        "_max_tokens",
        "_preemptions",
        "_prefix_hit",
        "_prefix_queried",
        "_prompt_tokens",
        "_read_bytes",
        "_recomputed_flops",
        "_recomputed_tokens",
        "_running",
        "_spec",
        "_step_counts",
        "_step_sequences",
        "_step_sum",
        "_steps_decode",
        "_steps_mixed",
        "_steps_prefill",
        "_tokens_decode",
        "_tokens_prefill",
        "_trace",
        "_ttft_counts",
        "_ttft_sum",
        "_waiting",
        "_wall_clock",
        "_write_bytes",
    )

    def __init__(
        self,
        engine: str,
        model: str,
        *,
        model_spec: ModelSpec | None = None,
        dtype: str = "bf16",
        kv_dtype: str = "bf16",
        max_batch_sequences: int | None = None,
        max_batch_tokens: int | None = None,
        kv_block_size: int | None = None,
        kv_capacity_blocks: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        trace: TraceSink | None = None,
        kv_predict_sample_rate: float | None = 0.01,
        kv_predict_max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if kv_predict_sample_rate is not None:
            sample_threshold(kv_predict_sample_rate)  # ConfigError outside (0, 1]
        if kv_predict_max_bytes <= 0:
            raise ConfigError("kv_predict_max_bytes", f"must be > 0, got {kv_predict_max_bytes}")
        if model_spec is not None and not isinstance(model_spec, ModelSpec):
            raise TypeError(f"model_spec must be a ModelSpec, got {type(model_spec).__name__}")
        dtype_bytes(dtype), dtype_bytes(kv_dtype)  # ConfigError names the dtypes known
        self._labels = (_label(engine, "engine"), _label(model, "model"))
        self._spec, self._dtype, self._kv_dtype, self._clock = model_spec, dtype, kv_dtype, clock
        self._max_seqs = _optional_count(max_batch_sequences, "max_batch_sequences")
        self._max_tokens = _optional_count(max_batch_tokens, "max_batch_tokens")
        self._kv_block_size = _optional_count(kv_block_size, "kv_block_size")
        self._kv_capacity = _optional_count(kv_capacity_blocks, "kv_capacity_blocks")
        self._cache_dtype = kv_dtype
        self._wall_clock = wall_clock
        # LoRA state as one tuple, replaced whole (readers never see half an update):
        # (max_lora, running names, waiting names, Unix time of the report), or None.
        self._lora: tuple[str, str, str, float] | None = None
        # Gauges: None until the engine reports them (an unknown value emits no sample).
        self._kv_used: int | None = None
        self._kv_evictable: int | None = None
        self._waiting: int | None = None
        self._running: int | None = None
        # Counters (units in the catalog entries' names).
        self._steps_prefill = self._steps_decode = self._steps_mixed = 0
        self._step_sequences = self._tokens_prefill = self._tokens_decode = 0
        self._busy = self._flops = self._read_bytes = self._write_bytes = 0.0
        self._prefix_queried = self._prefix_hit = self._evicted = self._preemptions = 0
        self._recomputed_tokens, self._recomputed_flops = 0, 0.0
        self._prompt_tokens = self._cached_tokens = self._generated = self._finished = 0
        # Histograms: per-bucket counts, the last slot above the largest bound; and the sum.
        self._step_counts = [0] * (len(STEP_BOUNDS) + 1)
        self._ttft_counts = [0] * (len(TTFT_BOUNDS) + 1)
        self._itl_counts = [0] * (len(ITL_BOUNDS) + 1)
        self._e2e_counts = [0] * (len(E2E_BOUNDS) + 1)
        self._step_sum = self._ttft_sum = self._itl_sum = self._e2e_sum = 0.0
        self._hook_errors = 0
        self._logged: set[str] = set()
        self._detail = Detail()  # the detail hooks' families (`detail_hooks.py`)
        # Prefix trace and live ghost cache, fed by record_prefix_lookup's block_hashes.
        self._trace = trace
        self._ghost_rate, self._ghost_max_bytes = kv_predict_sample_rate, kv_predict_max_bytes
        self._ghost: GhostCache | None = None
        self._ghost_capacity = 0
        """The KV pool (blocks) the ghost's capacities are multiples of."""

    # --- identity -----------------------------------------------------------------------

    @property
    def engine(self) -> str:
        """The `engine` label value."""
        return self._labels[0]

    @property
    def model(self) -> str:
        """The `model` label value."""
        return self._labels[1]

    @property
    def clock(self) -> Callable[[], float]:
        """The injected monotonic clock (seconds) for the engine's durations."""
        return self._clock

    @property
    def hook_errors(self) -> int:
        """Hook calls dropped so far (invalid arguments or an internal failure)."""
        return self._hook_errors

    def collect(self) -> tuple[Sample, ...]:
        """The current values as catalog samples, in catalog order. Unlike `snapshot()` this
        raises on an internal failure: it is the reader a server uses (the hooks' endpoint
        answers 500), not one for the engine's own loop."""
        e, m = self._labels
        out = [cat.ENGINE_INFO.sample(1, e, m, "gpumetrics")]
        gauges = (
            (cat.KV_CAPACITY_BLOCKS, self._kv_capacity),
            (cat.KV_USED_BLOCKS, self._kv_used),
            (cat.KV_EVICTABLE_BLOCKS, self._kv_evictable),
            (cat.KV_BLOCK_SIZE, self._kv_block_size),
        )
        used, capacity = self._kv_used, self._kv_capacity
        if used is not None and capacity:
            out.append(cat.KV_USAGE.sample(used / capacity, e, m))
        scalars = (
            *gauges,
            (cat.PREFIX_QUERIED, self._prefix_queried),
            (cat.PREFIX_HIT, self._prefix_hit),
            (cat.KV_EVICTED_BLOCKS, self._evicted),
            (cat.RECOMPUTED_TOKENS, self._recomputed_tokens),
            (cat.RECOMPUTED_FLOPS, self._recomputed_flops),
            (cat.PREEMPTIONS, self._preemptions),
            (cat.RUNNING_SEQUENCES, self._running),
            (cat.WAITING_REQUESTS, self._waiting),
            (cat.MAX_BATCH_SEQUENCES, self._max_seqs),
            (cat.MAX_BATCH_TOKENS, self._max_tokens),
        )
        out += [spec.sample(value, e, m) for spec, value in scalars if value is not None]
        out += [
            cat.STEPS.sample(self._steps_prefill, e, m, "prefill"),
            cat.STEPS.sample(self._steps_decode, e, m, "decode"),
            cat.STEPS.sample(self._steps_mixed, e, m, "mixed"),
            cat.STEP_SEQUENCES.sample(self._step_sequences, e, m),
            cat.STEP_TOKENS.sample(self._tokens_prefill, e, m, "prefill"),
            cat.STEP_TOKENS.sample(self._tokens_decode, e, m, "decode"),
            cat.STEP_BUSY.sample(self._busy, e, m),
            cat.STEP_DURATION.sample(
                _histogram(STEP_BOUNDS, self._step_counts, self._step_sum), e, m
            ),
            cat.FLOPS.sample(self._flops, e, m),
            cat.READ_BYTES.sample(self._read_bytes, e, m),
            cat.WRITE_BYTES.sample(self._write_bytes, e, m),
            cat.PROMPT_TOKENS.sample(self._prompt_tokens, e, m),
            cat.PROMPT_CACHED_TOKENS.sample(self._cached_tokens, e, m),
            cat.GENERATED_TOKENS.sample(self._generated, e, m),
            cat.FINISHED_REQUESTS.sample(self._finished, e, m),
            cat.TTFT.sample(_histogram(TTFT_BOUNDS, self._ttft_counts, self._ttft_sum), e, m),
            cat.ITL.sample(_histogram(ITL_BOUNDS, self._itl_counts, self._itl_sum), e, m),
            cat.E2E.sample(_histogram(E2E_BOUNDS, self._e2e_counts, self._e2e_sum), e, m),
        ]
        ghost = self._ghost
        if ghost is not None:
            for (factor, _), (_, ratio) in zip(CAPACITY_FACTORS, ghost.predictions(), strict=True):
                if ratio is not None:
                    out.append(cat.KV_PREDICTED_HIT_RATIO.sample(ratio, e, m, factor))
        out.append(cat.HOOK_ERRORS.sample(self._hook_errors, e, m))
        block_size, blocks = self._kv_block_size, self._kv_capacity
        if block_size and blocks:
            out.append(
                cat.CACHE_CONFIG_INFO.sample(
                    1, e, m, str(block_size), str(blocks), self._cache_dtype
                )
            )
        lora = self._lora
        if lora is not None:
            max_lora, running, waiting, reported_at = lora
            out.append(cat.LORA_ADAPTERS_INFO.sample(reported_at, e, m, max_lora, running, waiting))
        out += self._detail.samples(e, m)
        return tuple(sorted(out, key=lambda sample: _ORDER[sample.metric]))  # stable

    @property
    def ghost(self) -> GhostCache | None:
        """The live ghost cache (None until block hashes and the KV pool size are known, or
        when prediction is off): its `rate` is the SHARDS sample rate in use."""
        return self._ghost

    def _ghost_for(self, capacity: int) -> GhostCache | None:
        """The ghost cache at CAPACITY_FACTORS x `capacity` blocks (a new one, empty, when
        the pool's size changed), or None when prediction is off."""
        if self._ghost_rate is None:
            return None
        if self._ghost is None or capacity != self._ghost_capacity:
            self._ghost = GhostCache(
                [f * capacity for _, f in CAPACITY_FACTORS],
                rate=self._ghost_rate,
                max_bytes=self._ghost_max_bytes,
            )
            self._ghost_capacity = capacity
        return self._ghost

    def _drop(self, method: str, exc: BaseException) -> None:
        """Count a dropped call; log the first drop per method (never raises)."""
        try:
            self._hook_errors += 1
            if method in self._logged:
                log.debug("gpumetrics hook %s dropped a call: %r", method, exc)
                return
            self._logged.add(method)
            log.warning(
                "gpumetrics hook %s dropped a call (%r); later drops of %s are counted in "
                "hook_errors and logged at debug level",
                method,
                exc,
                method,
                exc_info=not isinstance(exc, ValueError | TypeError),
            )
        except Exception:  # logging failed: the hooks never raise into the engine
            pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(engine={self.engine!r}, model={self.model!r})"
