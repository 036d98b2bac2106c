"""The plugin's families as prometheus_client metric objects, on vLLM's own /metrics.

vLLM serves `prometheus_client`'s default registry on its API server's /metrics (with a
`MultiProcessCollector` over `PROMETHEUS_MULTIPROC_DIR` when it runs several API servers), so
the plugin registers ordinary Counter/Gauge/Histogram objects there: in multiprocess mode
prometheus_client backs them with the files that collector aggregates (gauges as
"mostrecent", like vLLM's own), where a custom collector would be invisible.

Names, help texts, types and buckets are the catalog's (`gpumetrics.catalog.engine`), so the
page reads exactly like the hooks' page and the bridge's `gpumetrics` map recognises it. Each
series carries `engine` (the gpumetrics engine name), `model` (vLLM's served model name) and
`dp_rank` (vLLM's engine index, which vLLM itself labels `engine`).

Prompt KV tokens by origin, the external (KV connector) prefix cache and speculative decoding
hold exactly what vLLM's own prompt_tokens_by_source, external_prefix_cache_* and
spec_decode_* counters add (the same stats fields, the same steps). Not fed:
`gpumetrics_engine_preempted_tokens_total`: vLLM's stats count preempted requests, not the
tokens they give up (`preempted_queries` counts them again at re-admission, later, and misses
requests aborted while preempted).
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from ..catalog import MetricSpec, MetricType
from ..catalog import engine as cat
from .vllm_step import StepReading

__all__ = ["PROM_SPECS", "PromSink"]

#: The catalog families the plugin exports.
PROM_SPECS: tuple[MetricSpec, ...] = (
    cat.KV_USAGE, cat.KV_CAPACITY_BLOCKS, cat.KV_USED_BLOCKS, cat.KV_BLOCK_SIZE,
    cat.PREFIX_QUERIED, cat.PREFIX_HIT, cat.KV_EVICTED_BLOCKS, cat.RECOMPUTED_TOKENS,
    cat.RECOMPUTED_FLOPS, cat.PREEMPTIONS, cat.RUNNING_SEQUENCES, cat.WAITING_REQUESTS,
    cat.MAX_BATCH_SEQUENCES, cat.MAX_BATCH_TOKENS, cat.STEPS, cat.STEP_SEQUENCES,
    cat.STEP_TOKENS, cat.STEP_BUSY, cat.STEP_DURATION, cat.FLOPS, cat.READ_BYTES,
    cat.WRITE_BYTES, cat.PROMPT_TOKENS, cat.PROMPT_CACHED_TOKENS, cat.GENERATED_TOKENS,
    cat.FINISHED_REQUESTS, cat.TTFT, cat.ITL, cat.E2E, cat.HOOK_ERRORS,
    cat.PROMPT_KV_TOKENS, cat.EXTERNAL_PREFIX_QUERIED, cat.EXTERNAL_PREFIX_HIT, cat.SPEC_DRAFTS,
    cat.SPEC_DRAFT_TOKENS, cat.SPEC_ACCEPTED_TOKENS, cat.SPEC_POSITION_ACCEPTED,
)  # fmt: skip

#: `origin` label values of PROMPT_KV_TOKENS, in StepReading's order.
ORIGINS = ("computed", "local_cache", "external")
#: Most draft positions given their own series (as the hooks' record_spec_decode).
MAX_POSITIONS = 64

#: Label added to every series: vLLM's data-parallel engine index.
DP_LABEL = "dp_rank"

_lock = threading.Lock()
_families: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


def _family(spec: MetricSpec, registry: CollectorRegistry) -> Any:
    labels = (*spec.labels, DP_LABEL)
    if spec.type is MetricType.COUNTER:
        return Counter(spec.base_name, spec.help, labels, registry=registry)
    if spec.type is MetricType.GAUGE:
        return Gauge(
            spec.name, spec.help, labels, registry=registry, multiprocess_mode="mostrecent"
        )
    return Histogram(spec.name, spec.help, labels, registry=registry, buckets=spec.buckets)


def families(registry: CollectorRegistry | None = None) -> dict[str, Any]:
    """The plugin's metric objects in `registry` (default: prometheus_client's), created once
    per registry: vLLM builds one logger per DP rank, and they share these families."""
    registry = REGISTRY if registry is None else registry
    with _lock:
        found = _families.get(registry)
        if found is None:
            found = {spec.name: _family(spec, registry) for spec in PROM_SPECS}
            _families[registry] = found
        return found


def observe_many(child: Any, bounds: Sequence[float], values: Sequence[float]) -> None:
    """`child.observe(v)` for each of `values`, with one increment per bucket touched (a batch
    of 64 inter-token gaps falls into one or two buckets): prometheus_client's Histogram keeps
    per-bucket (not cumulative) values and a sum, which this adds to directly — in its
    multiprocess mode too. Falls back to `observe` where those values are not there."""
    buckets, total = getattr(child, "_buckets", None), getattr(child, "_sum", None)
    if len(values) < 3 or buckets is None or total is None or len(buckets) != len(bounds) + 1:
        for v in values:
            child.observe(v)
        return
    total.inc(sum(values))
    low, high = bisect_left(bounds, min(values)), bisect_left(bounds, max(values))
    if low == high:  # the usual case: one bucket
        buckets[low].inc(len(values))
        return
    for index, count in Tally(bisect_left(bounds, v) for v in values).items():
        buckets[index].inc(count)


def incrementer(child: Any) -> Callable[[float], None]:
    """The cheapest exact way to add to a Counter child: its value's own `inc` (a lock and an
    add, or the multiprocess file's write), which is what `Counter.inc` calls after checking
    the amount is not negative and attaching no exemplar. The plugin adds only counts and
    FLOPs/bytes/seconds that are >= 0, so the check is moot. Falls back to `child.inc`."""
    value = getattr(child, "_value", None)
    inc = getattr(value, "inc", None)
    return inc if callable(inc) else child.inc  # type: ignore[no-any-return]


class _Gauge:
    """A Gauge child set only when its value changes (a steady decode batch keeps running,
    waiting and often KV usage the same step after step)."""

    __slots__ = ("child", "last")

    def __init__(self, child: Any) -> None:
        self.child: Any = child
        self.last: float | None = None

    def set(self, value: float) -> None:
        if value != self.last:
            self.child.set(value)
            self.last = value


def _observe1(child: Any, bounds: Sequence[float]) -> Callable[[float], None]:
    """`child.observe` for one value, by the same direct bucket/sum increments as
    `observe_many` (falls back to `observe`)."""
    buckets, total = getattr(child, "_buckets", None), getattr(child, "_sum", None)
    if buckets is None or total is None or len(buckets) != len(bounds) + 1:
        return child.observe  # type: ignore[no-any-return]
    add_sum, bucket_incs = total.inc, [b.inc for b in buckets]

    def observe(value: float) -> None:
        add_sum(value)
        bucket_incs[bisect_left(bounds, value)](1)

    return observe


class PromSink:
    """One DP rank's children of the shared families, bound once (a step is a few bound-method
    calls). Every series exists from the start (counters at 0): the bridge takes a family
    from the plugin as soon as the page carries any of its series."""

    def __init__(
        self,
        engine: str,
        model: str,
        dp_rank: int,
        *,
        registry: CollectorRegistry | None = None,
        kv_capacity_blocks: int | None = None,
        kv_block_size: int | None = None,
        max_batch_sequences: int | None = None,
        max_batch_tokens: int | None = None,
        spec_positions: int = 0,
    ) -> None:
        fam = families(registry)
        key = (engine, model, str(dp_rank))

        def bind(spec: MetricSpec, *extra: str) -> Any:
            return fam[spec.name].labels(*key[:2], *extra, key[2])

        def counter(spec: MetricSpec, *extra: str) -> Callable[[float], None]:
            return incrementer(bind(spec, *extra))

        def position(pos: int) -> Callable[[float], None]:
            return counter(cat.SPEC_POSITION_ACCEPTED, str(pos))

        self._bind_position = position
        self._capacity = kv_capacity_blocks
        for spec, value in (
            (cat.KV_CAPACITY_BLOCKS, kv_capacity_blocks),
            (cat.KV_BLOCK_SIZE, kv_block_size),
            (cat.MAX_BATCH_SEQUENCES, max_batch_sequences),
            (cat.MAX_BATCH_TOKENS, max_batch_tokens),
        ):
            if value is not None:
                bind(spec).set(value)
        self.kv_usage, self.kv_used = _Gauge(bind(cat.KV_USAGE)), _Gauge(bind(cat.KV_USED_BLOCKS))
        self.running = _Gauge(bind(cat.RUNNING_SEQUENCES))
        self.waiting = _Gauge(bind(cat.WAITING_REQUESTS))
        self.queried, self.hit = counter(cat.PREFIX_QUERIED), counter(cat.PREFIX_HIT)
        self.evicted = counter(cat.KV_EVICTED_BLOCKS)
        self.recomputed = counter(cat.RECOMPUTED_TOKENS)
        self.recomputed_flops = counter(cat.RECOMPUTED_FLOPS)
        self.preemptions = counter(cat.PREEMPTIONS)
        self.steps = {p: counter(cat.STEPS, p) for p in ("prefill", "decode", "mixed")}
        self.step_sequences = counter(cat.STEP_SEQUENCES)
        self.tokens_prefill = counter(cat.STEP_TOKENS, "prefill")
        self.tokens_decode = counter(cat.STEP_TOKENS, "decode")
        self.busy = counter(cat.STEP_BUSY)
        self.duration = _observe1(bind(cat.STEP_DURATION), cat.STEP_DURATION.buckets)
        self.flops, self.read = counter(cat.FLOPS), counter(cat.READ_BYTES)
        self.write = counter(cat.WRITE_BYTES)
        self.prompt, self.cached = counter(cat.PROMPT_TOKENS), counter(cat.PROMPT_CACHED_TOKENS)
        self.origins = tuple(counter(cat.PROMPT_KV_TOKENS, o) for o in ORIGINS)
        self.generated = counter(cat.GENERATED_TOKENS)
        self.finished = counter(cat.FINISHED_REQUESTS)
        self.ttft, self.itl, self.e2e = bind(cat.TTFT), bind(cat.ITL), bind(cat.E2E)
        self.external_queried = counter(cat.EXTERNAL_PREFIX_QUERIED)
        self.external_hit = counter(cat.EXTERNAL_PREFIX_HIT)
        self.drafts, self.draft_tokens = counter(cat.SPEC_DRAFTS), counter(cat.SPEC_DRAFT_TOKENS)
        self.accepted = counter(cat.SPEC_ACCEPTED_TOKENS)
        self.positions = [self._bind_position(pos) for pos in range(spec_positions)]
        self.errors = bind(cat.HOOK_ERRORS)
        self.errors.inc(0)  # the family shows 0 from the start

    def hook_error(self) -> None:
        self.errors.inc()

    def apply(
        self,
        r: StepReading,
        work: tuple[float, float, float, float],
        evicted_blocks: float,
    ) -> None:
        """One step's reading; `work` is (FLOPs, bytes read, bytes written, recompute FLOPs).
        Counters are added to only when the step moved them; gauges set only on change."""
        if r.running is not None:
            self.running.set(r.running)
        if r.waiting is not None:
            self.waiting.set(r.waiting)
        if r.kv_usage is not None:
            self.kv_usage.set(r.kv_usage)
            if self._capacity:
                self.kv_used.set(round(r.kv_usage * self._capacity))
        if r.prefix_queries:
            self.queried(r.prefix_queries)
            if r.prefix_hits:
                self.hit(r.prefix_hits)
        if r.recomputed_tokens:
            self.recomputed(r.recomputed_tokens)
            self.recomputed_flops(work[3])
        if evicted_blocks:
            self.evicted(evicted_blocks)
        if r.preemptions:
            self.preemptions(r.preemptions)
        phase = r.phase
        if phase is not None:
            self.steps[phase](1)
            self.step_sequences(r.sequences)
            if r.prefill_tokens:
                self.tokens_prefill(r.prefill_tokens)
            if r.decode_tokens:
                self.tokens_decode(r.decode_tokens)
            self.flops(work[0])
            self.read(work[1])
            self.write(work[2])
        if r.duration_s is not None:
            self.busy(r.duration_s)
            self.duration(r.duration_s)
        if r.prompt_tokens:
            self._prompt(r)
        if r.generated_tokens:
            self.generated(r.generated_tokens)
        if r.ttfts:
            observe_many(self.ttft, cat.TTFT.buckets, r.ttfts)
        if r.itls:
            observe_many(self.itl, cat.ITL.buckets, r.itls)
        if r.e2es:
            observe_many(self.e2e, cat.E2E.buckets, r.e2es)
            self.finished(len(r.e2es))
        if r.external_queries:
            self.external_queried(r.external_queries)
            if r.external_hits:
                self.external_hit(r.external_hits)
        if r.spec_drafts:
            self._spec(r)

    def _prompt(self, r: StepReading) -> None:
        self.prompt(r.prompt_tokens)
        if r.prompt_cached_tokens:
            self.cached(r.prompt_cached_tokens)
        for inc, tokens in zip(
            self.origins,
            (r.prompt_computed_tokens, r.prompt_local_cache_tokens, r.prompt_external_tokens),
            strict=True,
        ):
            if tokens:
                inc(tokens)

    def _spec(self, r: StepReading) -> None:
        self.drafts(r.spec_drafts)
        self.draft_tokens(r.spec_draft_tokens)
        if r.spec_accepted_tokens:
            self.accepted(r.spec_accepted_tokens)
        positions = self.positions
        for pos, tokens in enumerate(r.spec_accepted_per_position):
            if tokens:
                if pos >= MAX_POSITIONS:
                    raise ValueError(f"more than {MAX_POSITIONS} draft positions")
                while pos >= len(positions):  # more positions than the config said
                    positions.append(self._bind_position(len(positions)))
                positions[pos](tokens)
