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
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Sequence
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
)  # fmt: skip

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


class PromSink:
    """One DP rank's children of the shared families, bound once (a step is attribute
    lookups and `inc`/`set`/`observe`)."""

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
    ) -> None:
        fam = families(registry)
        key = (engine, model, str(dp_rank))

        def bind(spec: MetricSpec, *extra: str) -> Any:
            return fam[spec.name].labels(*key[:2], *extra, key[2])

        self._capacity = kv_capacity_blocks
        for spec, value in (
            (cat.KV_CAPACITY_BLOCKS, kv_capacity_blocks),
            (cat.KV_BLOCK_SIZE, kv_block_size),
            (cat.MAX_BATCH_SEQUENCES, max_batch_sequences),
            (cat.MAX_BATCH_TOKENS, max_batch_tokens),
        ):
            if value is not None:
                bind(spec).set(value)
        self.kv_usage, self.kv_used = bind(cat.KV_USAGE), bind(cat.KV_USED_BLOCKS)
        self.queried, self.hit = bind(cat.PREFIX_QUERIED), bind(cat.PREFIX_HIT)
        self.evicted = bind(cat.KV_EVICTED_BLOCKS)
        self.recomputed, self.recomputed_flops = (
            bind(cat.RECOMPUTED_TOKENS),
            bind(cat.RECOMPUTED_FLOPS),
        )
        self.preemptions = bind(cat.PREEMPTIONS)
        self.running, self.waiting = bind(cat.RUNNING_SEQUENCES), bind(cat.WAITING_REQUESTS)
        self.steps = {p: bind(cat.STEPS, p) for p in ("prefill", "decode", "mixed")}
        self.step_sequences = bind(cat.STEP_SEQUENCES)
        self.tokens_prefill = bind(cat.STEP_TOKENS, "prefill")
        self.tokens_decode = bind(cat.STEP_TOKENS, "decode")
        self.busy, self.duration = bind(cat.STEP_BUSY), bind(cat.STEP_DURATION)
        self.flops, self.read, self.write = (
            bind(cat.FLOPS),
            bind(cat.READ_BYTES),
            bind(cat.WRITE_BYTES),
        )
        self.prompt, self.cached = bind(cat.PROMPT_TOKENS), bind(cat.PROMPT_CACHED_TOKENS)
        self.generated, self.finished = bind(cat.GENERATED_TOKENS), bind(cat.FINISHED_REQUESTS)
        self.ttft, self.itl, self.e2e = bind(cat.TTFT), bind(cat.ITL), bind(cat.E2E)
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
        """One step's reading; `work` is (FLOPs, bytes read, bytes written, recompute FLOPs)."""
        if r.running is not None:
            self.running.set(r.running)
        if r.waiting is not None:
            self.waiting.set(r.waiting)
        if r.kv_usage is not None:
            self.kv_usage.set(r.kv_usage)
            if self._capacity:
                self.kv_used.set(round(r.kv_usage * self._capacity))
        if r.prefix_queries:
            self.queried.inc(r.prefix_queries)
            self.hit.inc(r.prefix_hits)
        if r.recomputed_tokens:
            self.recomputed.inc(r.recomputed_tokens)
            self.recomputed_flops.inc(work[3])
        if evicted_blocks:
            self.evicted.inc(evicted_blocks)
        if r.preemptions:
            self.preemptions.inc(r.preemptions)
        phase = r.phase
        if phase is not None:
            self.steps[phase].inc()
            self.step_sequences.inc(r.sequences)
            if r.prefill_tokens:
                self.tokens_prefill.inc(r.prefill_tokens)
            if r.decode_tokens:
                self.tokens_decode.inc(r.decode_tokens)
            self.flops.inc(work[0])
            self.read.inc(work[1])
            self.write.inc(work[2])
        if r.duration_s is not None:
            self.busy.inc(r.duration_s)
            self.duration.observe(r.duration_s)
        if r.prompt_tokens:
            self.prompt.inc(r.prompt_tokens)
            self.cached.inc(r.prompt_cached_tokens)
        if r.generated_tokens:
            self.generated.inc(r.generated_tokens)
        if r.ttfts:
            observe_many(self.ttft, cat.TTFT.buckets, r.ttfts)
        if r.itls:
            observe_many(self.itl, cat.ITL.buckets, r.itls)
        if r.e2es:
            observe_many(self.e2e, cat.E2E.buckets, r.e2es)
        if r.e2es:
            self.finished.inc(len(r.e2es))
