"""`EngineMetrics`: the engine-facing hooks. O(1) per call, stdlib only, never raising.

A call validates all of its arguments first, then applies all of its updates or none.
An invalid call (a negative count, NaN, a string, an unknown phase, a count that is not a whole
number: `1.5`, `True`, `float("nan")`; an int-like such as numpy.int64 is accepted) is dropped and
counted in `hook_errors`; the first drop per method is logged as a warning, the rest at debug level.
(A call with a misspelt or missing keyword fails in Python's argument binding, before the hook
runs: that TypeError is the caller's bug, and mypy reports it.) Each call is O(1) except where
the engine hands over a list: the cost model over `work`, and `inter_token_s`.

Thread-safety model: **one writer per EngineMetrics, any number of readers.** The engine's
scheduler loop makes all `record_*` / `set_queue` calls (or, at least, never calls the same
method from two threads at once: `x += n` is not atomic, so two writers can lose increments —
never crash). Readers (`snapshot()`, `render_text()`, the HTTP endpoint) take no lock and never
block the writer: each counter they see is monotone, and each histogram is self-consistent
(its +Inf bucket equals its count) because both come from one copy of the bucket list; values
of different families may be up to one call apart.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from ..costmodel import RequestWork
from ..promtext import render_samples
from ..samples import Sample
from . import endpoint
from ._detail import is_whole
from ._state import E2E_BOUNDS, ITL_BOUNDS, MAX, STEP_BOUNDS, TTFT_BOUNDS
from ._trace import trace_line
from ._work import recompute_flops, step_work
from .detail_hooks import DetailHooks

__all__ = ["MAX_LORA_ADAPTERS", "MAX_LORA_NAME", "PHASES", "EngineMetrics"]

#: Step phases accepted by `record_step`.
PHASES = ("prefill", "decode", "mixed")


#: Limits on what `set_lora` accepts: names per list, and characters per name.
MAX_LORA_ADAPTERS = 256
MAX_LORA_NAME = 256


def _adapters(names: Sequence[str], what: str) -> str:
    """`names` as the comma-separated label value, after checking each one."""
    if isinstance(names, str) or len(names) > MAX_LORA_ADAPTERS:
        raise ValueError(f"{what} must be a sequence of at most {MAX_LORA_ADAPTERS} names")
    for name in names:
        if not isinstance(name, str) or not 0 < len(name) <= MAX_LORA_NAME or "," in name:
            raise ValueError(f"{what}: adapter names are non-empty str without commas")
    return ",".join(names)


def _whole(*counts: object) -> None:
    """Raise TypeError unless every count is whole (`_detail.is_whole`)."""
    for count in counts:
        if not is_whole(count):
            raise TypeError(f"counts must be integers, got {count!r}")


class EngineMetrics(DetailHooks):
    """Cumulative engine metrics for one (engine, model), recorded by the engine's own loop.

    `engine` and `model` become the `engine` / `model` labels. With `model_spec` (see
    `gpumetrics.costmodel.find_model`), FLOPs and bytes the engine omits are computed from
    the cost model in `dtype` (weights) and `kv_dtype` (KV cache). The `max_batch_*`,
    `kv_block_size` and `kv_capacity_blocks` configuration gauges are exported when given.
    `clock` (seconds, monotonic) is the time source offered to the engine for step and request
    durations (`t0 = m.clock(); ...; m.record_step(..., duration_s=m.clock() - t0)`);
    `wall_clock` (Unix seconds) stamps `set_lora` reports. For an inference gateway's endpoint
    picker, `set_cache_config` (or `kv_block_size` + the pool size) yields
    `gpumetrics_engine_cache_config_info` and `set_lora` `gpumetrics_engine_lora_adapters_info`.
    `trace` (a text file, say) receives one JSONL line per `record_prefix_lookup` that
    carries `block_hashes` (docs/kv-size.md's gpumetrics trace format). Those hashes also feed a
    SHARDS-sampled ghost LRU (`gpumetrics.kvsize.ghost`) at 0.5, 2 and 4 times the KV pool,
    exported as `gpumetrics_engine_kv_predicted_hit_ratio`: `kv_predict_sample_rate` in
    (0, 1] (None: off; default 0.01, ~0.3 µs per looked-up block) is the highest sample rate,
    lowered until the ghosts fit `kv_predict_max_bytes` (8 MiB by default). A capacity below
    1/rate blocks predicts nothing: small pools want a higher rate (the reference worker
    uses 1, exact; ~1.8 µs per block).

    The detail hooks (`record_spec_decode`, `record_prompt_tokens`,
    `record_external_prefix_lookup`, `record_kv_transfer`, `record_preempted_tokens`,
    `set_waiting_by_reason`, `set_sleep_state`, `record_block_residency`) are inherited from
    `detail_hooks.DetailHooks`.

    Construction validates its arguments and may raise (set-up time); the `record_*` and
    `set_queue` methods, `snapshot()` and `render_text()` never raise; `collect()` (inherited,
    the reader a server uses) raises on an internal failure so the server can answer 500.
    """

    __slots__ = ()

    # --- the hooks (hot path) -----------------------------------------------------------

    def record_step(
        self,
        *,
        phase: str,
        sequences: int,
        prefill_tokens: int,
        decode_tokens: int,
        duration_s: float,
        flops: float | None = None,
        read_bytes: float | None = None,
        write_bytes: float | None = None,
        work: Sequence[RequestWork] | None = None,
    ) -> None:
        """One engine step (forward pass) of `phase` prefill|decode|mixed that took
        `duration_s` seconds over `sequences` sequences and computed `prefill_tokens` +
        `decode_tokens` tokens. `flops` (FLOPs), `read_bytes` and `write_bytes` (HBM bytes)
        are the step's work; each one omitted is computed from the cost model over `work`
        when a model_spec was given (then `work` is required), else not counted."""
        try:
            if not (
                type(sequences) is int
                and type(prefill_tokens) is int
                and type(decode_tokens) is int
            ):  # ints: one type check each
                _whole(sequences, prefill_tokens, decode_tokens)
            if flops is None or read_bytes is None or write_bytes is None:
                flops, read_bytes, write_bytes = step_work(
                    self._spec,
                    work,
                    flops,
                    read_bytes,
                    write_bytes,
                    dtype=self._dtype,
                    kv_dtype=self._kv_dtype,
                )
            if not (
                sequences >= 0
                and prefill_tokens >= 0
                and decode_tokens >= 0
                and duration_s >= 0
                and flops >= 0
                and read_bytes >= 0
                and write_bytes >= 0
                and sequences + prefill_tokens + decode_tokens + duration_s + flops
                + read_bytes + write_bytes <= MAX
            ):  # fmt: skip
                raise ValueError("counts, duration and work must be finite and >= 0")
            bucket = bisect_left(STEP_BOUNDS, duration_s)
            if phase == "decode":
                self._steps_decode += 1
            elif phase == "prefill":
                self._steps_prefill += 1
            elif phase == "mixed":
                self._steps_mixed += 1
            else:
                raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
            self._step_sequences += sequences
            self._tokens_prefill += prefill_tokens
            self._tokens_decode += decode_tokens
            self._busy += duration_s
            self._step_counts[bucket] += 1
            self._step_sum += duration_s
            self._flops += flops
            self._read_bytes += read_bytes
            self._write_bytes += write_bytes
        except Exception as exc:
            self._drop("record_step", exc)

    def record_kv(self, *, used_blocks: int, total_blocks: int, evictable_blocks: int = 0) -> None:
        """KV-cache occupancy now: blocks held by live sequences, blocks allocated in all, and
        free blocks still holding a reusable cached prefix. Usage ratio = used / total."""
        try:
            if not (
                type(used_blocks) is int
                and type(total_blocks) is int
                and type(evictable_blocks) is int
            ):  # ints: one type check each
                _whole(used_blocks, total_blocks, evictable_blocks)
            if not (
                0 <= used_blocks <= total_blocks <= MAX
                and total_blocks > 0
                and 0 <= evictable_blocks <= total_blocks
            ):
                raise ValueError("need 0 <= used, evictable <= total and total > 0")
            self._kv_used = used_blocks
            self._kv_capacity = total_blocks
            self._kv_evictable = evictable_blocks
        except Exception as exc:
            self._drop("record_kv", exc)

    def record_prefix_lookup(
        self,
        *,
        queried_tokens: int,
        hit_tokens: int,
        block_hashes: Sequence[int] | None = None,
        output_tokens: int | None = None,
        conversation: str | int | None = None,
    ) -> None:
        """A prefix-cache lookup: `queried_tokens` prompt tokens looked up, `hit_tokens` of
        them found cached (tokens, not blocks).

        `block_hashes`, once per request (not again when a preempted request is looked up
        anew): the engine's chained hashes of the prompt's full blocks, in prefix order. They
        feed the live ghost cache (`gpumetrics_engine_kv_predicted_hit_ratio`, once the KV
        pool's size is known) and, with a `trace` sink and `kv_block_size`, one trace line
        (timestamp from `clock`, `output_tokens` as output_length (0 if unknown),
        `conversation`); a sink that raises drops the whole call.
        O(len(block_hashes))."""
        try:
            if not (
                type(queried_tokens) is int and type(hit_tokens) is int
            ):  # ints: one type check each
                _whole(queried_tokens, hit_tokens)
            if output_tokens is not None and type(output_tokens) is not int:
                _whole(output_tokens)
            if not 0 <= hit_tokens <= queried_tokens <= MAX:
                raise ValueError("need 0 <= hit_tokens <= queried_tokens")
            if block_hashes is not None:
                self._check_hashes(block_hashes, queried_tokens, output_tokens, conversation)
            if block_hashes is not None and self._trace is not None and self._kv_block_size:
                self._trace.write(
                    trace_line(
                        timestamp_ms=self._clock() * 1000.0,
                        input_length=queried_tokens,
                        output_length=output_tokens or 0,
                        hash_ids=block_hashes,
                        block_size=self._kv_block_size,
                        conversation=conversation,
                    )
                )  # first: a sink that fails drops the whole call
            self._prefix_queried += queried_tokens
            self._prefix_hit += hit_tokens
            if block_hashes is not None and self._kv_capacity:
                ghost = self._ghost_for(self._kv_capacity)
                if ghost is not None:
                    ghost.access(block_hashes)
        except Exception as exc:
            self._drop("record_prefix_lookup", exc)

    def _check_hashes(
        self,
        block_hashes: Sequence[int],
        queried_tokens: int,
        output_tokens: int | None,
        conversation: str | int | None,
    ) -> None:
        if any(type(h) is not int for h in block_hashes):
            raise TypeError("block_hashes must be ints")
        size = self._kv_block_size
        if size and len(block_hashes) * size > queried_tokens:
            raise ValueError(f"{len(block_hashes)} full blocks exceed {queried_tokens} tokens")
        if output_tokens is not None and not 0 <= output_tokens <= MAX:
            raise ValueError("output_tokens must be finite and >= 0")
        if conversation is not None and type(conversation) not in (str, int):
            raise TypeError("conversation must be a str or an int")

    def record_eviction(self, blocks: int = 1) -> None:
        """Cached KV blocks reused for other data (their prefix is lost)."""
        try:
            if type(blocks) is not int:  # ints: one type check each
                _whole(blocks)
            if 0 <= blocks <= MAX:
                self._evicted += blocks
                return
            raise ValueError(f"blocks must be finite and >= 0, got {blocks!r}")
        except Exception as exc:
            self._drop("record_eviction", exc)

    def record_recompute(self, tokens: int, flops: float | None = None) -> None:
        """`tokens` prompt tokens prefilled again because their KV was evicted or preempted,
        and the FLOPs that wasted (default: their prefill cost from the cost model, 0 without
        a model_spec)."""
        try:
            if type(tokens) is not int:  # ints: one type check each
                _whole(tokens)
            if flops is None:
                flops = recompute_flops(
                    self._spec, tokens, dtype=self._dtype, kv_dtype=self._kv_dtype
                )
            if not (0 <= tokens <= MAX and 0 <= flops <= MAX):
                raise ValueError("tokens and flops must be finite and >= 0")
            self._recomputed_tokens += tokens
            self._recomputed_flops += flops
        except Exception as exc:
            self._drop("record_recompute", exc)

    def record_preemption(self, count: int = 1) -> None:
        """Running sequences preempted because KV blocks ran out."""
        try:
            if type(count) is not int:  # ints: one type check each
                _whole(count)
            if 0 <= count <= MAX:
                self._preemptions += count
                return
            raise ValueError(f"count must be finite and >= 0, got {count!r}")
        except Exception as exc:
            self._drop("record_preemption", exc)

    def set_queue(self, waiting: int, running: int) -> None:
        """Requests waiting to be scheduled and sequences in the running batch, now."""
        try:
            if not (type(waiting) is int and type(running) is int):  # ints: one type check each
                _whole(waiting, running)
            if not (0 <= waiting <= MAX and 0 <= running <= MAX):
                raise ValueError("waiting and running must be finite and >= 0")
            self._waiting = waiting
            self._running = running
        except Exception as exc:
            self._drop("set_queue", exc)

    def set_cache_config(self, *, block_size: int, num_gpu_blocks: int) -> None:
        """The KV cache's layout once the engine knows it (vLLM sizes its pool after profiling
        memory): `block_size` tokens per block, `num_gpu_blocks` blocks in GPU memory. Sets
        the block-size and capacity gauges and `gpumetrics_engine_cache_config_info`, which an
        inference gateway's prefix-cache scorer reads."""
        try:
            for value in (block_size, num_gpu_blocks):
                if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX:
                    raise ValueError("block_size and num_gpu_blocks must be ints > 0")
            self._kv_block_size = block_size
            self._kv_capacity = num_gpu_blocks
        except Exception as exc:
            self._drop("set_cache_config", exc)

    def set_lora(
        self, *, max_lora: int, running: Sequence[str] = (), waiting: Sequence[str] = ()
    ) -> None:
        """LoRA adapters now: at most `max_lora` fit in GPU memory at once; `running` are
        loaded and serving, `waiting` are requested and queued. Exported as
        `gpumetrics_engine_lora_adapters_info` (vLLM's lora_requests_info layout) with the
        Unix time of this call as its value. Names: non-empty, no commas, at most
        MAX_LORA_NAME characters, at most MAX_LORA_ADAPTERS per list."""
        try:
            if (
                isinstance(max_lora, bool)
                or not isinstance(max_lora, int)
                or not 0 <= max_lora <= MAX
            ):
                raise ValueError(f"max_lora must be an int >= 0, got {max_lora!r}")
            lists = (_adapters(running, "running"), _adapters(waiting, "waiting"))
            self._lora = (str(max_lora), *lists, self._wall_clock())
        except Exception as exc:
            self._drop("set_lora", exc)

    def record_request_finished(
        self,
        *,
        ttft_s: float,
        inter_token_s: Sequence[float] | None,
        e2e_s: float,
        prompt_tokens: int,
        cached_tokens: int,
        output_tokens: int,
    ) -> None:
        """A finished request: time to first token, the gaps between its output tokens and
        its end-to-end time (seconds); its prompt tokens, how many of them came from the
        prefix cache, and its output tokens. O(len(inter_token_s))."""
        try:
            if not (
                type(prompt_tokens) is int
                and type(cached_tokens) is int
                and type(output_tokens) is int
            ):  # ints: one type check each
                _whole(prompt_tokens, cached_tokens, output_tokens)
            if not (
                0 <= ttft_s <= MAX
                and 0 <= e2e_s <= MAX
                and 0 <= cached_tokens <= prompt_tokens <= MAX
                and 0 <= output_tokens <= MAX
            ):
                raise ValueError("need finite times >= 0 and 0 <= cached <= prompt tokens")
            itl_buckets: list[int] = []
            itl_total = 0.0
            if inter_token_s is not None and len(inter_token_s):
                itl_total = sum(inter_token_s, 0.0)
                if not (min(inter_token_s) >= 0 and itl_total <= MAX):
                    raise ValueError("inter_token_s must be finite and >= 0")
                itl_buckets = [bisect_left(ITL_BOUNDS, gap) for gap in inter_token_s]
            ttft_bucket = bisect_left(TTFT_BOUNDS, ttft_s)
            e2e_bucket = bisect_left(E2E_BOUNDS, e2e_s)
            self._finished += 1
            self._prompt_tokens += prompt_tokens
            self._cached_tokens += cached_tokens
            self._generated += output_tokens
            self._ttft_counts[ttft_bucket] += 1
            self._ttft_sum += ttft_s
            self._e2e_counts[e2e_bucket] += 1
            self._e2e_sum += e2e_s
            itl_counts = self._itl_counts
            for bucket in itl_buckets:
                itl_counts[bucket] += 1
            self._itl_sum += itl_total
        except Exception as exc:
            self._drop("record_request_finished", exc)

    # --- readers ------------------------------------------------------------------------

    def snapshot(self) -> tuple[Sample, ...]:
        """Current values as catalog samples, in catalog order (empty on an internal error,
        which is counted in `hook_errors`)."""
        try:
            return self.collect()
        except Exception as exc:
            self._drop("snapshot", exc)
            return ()

    def render_text(self) -> bytes:
        """The classic Prometheus text exposition (format 0.0.4) of this instance, UTF-8
        (empty on an internal error, which is counted in `hook_errors`)."""
        try:
            return render_samples(self.collect())
        except Exception as exc:
            self._drop("render_text", exc)
            return b""

    def serve(
        self, address: str = "127.0.0.1", port: int = 0, *, unix_socket: str | None = None
    ) -> endpoint.MetricsEndpoint:
        """Start a /metrics endpoint for this instance (see `gpumetrics.hooks.serve`)."""
        return endpoint.serve(self, address=address, port=port, unix_socket=unix_socket)
