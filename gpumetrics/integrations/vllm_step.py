"""What one vLLM engine step did, read from vLLM's stats objects (no vLLM import here).

`StepReader.read(scheduler_stats, iteration_stats)` turns the objects vLLM hands a stat logger
once per step into a `StepReading` of plain numbers, and keeps the little state needed to
estimate the step's attention work. Every field is read with `getattr` and a default, so a vLLM
whose stats lack a field degrades to what is there: the names missing are returned in
`StepReading.missing` (the plugin counts and logs them once) and the rest still flows.

Tokens of a step. With `--enable-logging-iteration-details`, vLLM attaches the scheduler's exact
counts (`iteration_details.num_ctx_tokens` / `num_generation_tokens`) and the step's duration
(`elapsed_ms`). Without it, prefill tokens are the prompt tokens computed by requests whose
prefill completed this step (`prompt_token_stats.computed`, all of a chunked prefill lands on
its last chunk's step) plus the tokens recomputed after a preemption
(`prefix_cache_stats.preempted_queries - preempted_hits`), and decode tokens are the generated
tokens less one first token per finished prefill; the step then has no duration, and a step
that completes nothing (a middle prefill chunk) is not seen at all. The live test serves with
iteration details on; the plugin's token counts then equal the scheduler's.

Attention work (the cost model's Σ n·c over requests: new tokens x context). vLLM's stats carry
no per-request context lengths, so it is estimated from running totals:
* decode: every live request (prefilled, not finished) has context = its prompt + the tokens it
  generated so far; the reader tracks their sum C and count N (prompt tokens when a prefill
  completes, + generated tokens, - prompt and generated tokens of finished requests), and a
  step's decode tokens D attend D x C/N. Exact when every live request decodes each step (no
  request waiting preempted), as in a steady decode batch;
* prefill: the k prefills that completed computed T tokens out of P prompt tokens in all; they
  attend T x P/k (exact when k = 1 or the prompts are equally long);
* recompute after preemption: q tokens looked up again by r requests, h of them hit; the q - h
  recomputed tokens attend (q - h) x q/r (exact when r = 1).
Logits: one per decode token and one per completed prefill.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["FinishedRequest", "StepReader", "StepReading"]


@dataclass(frozen=True, slots=True)
class FinishedRequest:
    """A request that finished this step: times in seconds, counts in tokens. `ttft_s` is
    e2e - decode time (vLLM keeps the first-token latency on the request state only)."""

    e2e_s: float
    ttft_s: float
    prompt_tokens: int
    cached_tokens: int
    generated_tokens: int
    preemptions: int


class StepReading(NamedTuple):
    """One step's numbers. Token counts are tokens; times are seconds; None = not reported.
    (Immutable like the house's frozen dataclasses, but a NamedTuple: building a frozen
    dataclass of 28 fields costs ~6 µs, a third of the per-step budget.)"""

    running: int | None
    waiting: int | None
    kv_usage: float | None
    prefix_queries: int
    prefix_hits: int
    recomputed_tokens: int
    recompute_token_context: int
    evicted_block_samples: int
    spec_drafts: int
    spec_draft_tokens: int
    spec_accepted_tokens: int
    spec_accepted_per_position: Sequence[int]
    """Accepted draft tokens at each draft position (vLLM's num_accepted_tokens_per_pos)."""
    external_queries: int
    """Prompt tokens looked up through a KV connector (connector_prefix_cache_stats)."""
    external_hits: int
    prefill_tokens: int
    decode_tokens: int
    sequences: int
    token_context: float
    """Σ new tokens x context over the step's requests (estimated; see module docstring)."""
    context: float
    """Σ context over the step's requests: the KV tokens it reads (estimated likewise)."""
    logits: int
    duration_s: float | None
    preemptions: int
    prompt_tokens: int
    prompt_cached_tokens: int
    prompt_computed_tokens: int
    """Prompt tokens by KV origin (vLLM's PromptTokenStats): computed here, local prefix-cache
    hits, external KV transfer; vLLM's own prompt_tokens_by_source counts these."""
    prompt_local_cache_tokens: int
    prompt_external_tokens: int
    generated_tokens: int
    ttfts: Sequence[float]
    itls: Sequence[float]
    e2es: tuple[float, ...]
    finished: tuple[FinishedRequest, ...]
    missing: tuple[str, ...]

    @property
    def phase(self) -> str | None:
        """prefill | decode | mixed, or None for a step that computed nothing seen here."""
        if self.prefill_tokens and self.decode_tokens:
            return "mixed"
        if self.prefill_tokens:
            return "prefill"
        return "decode" if self.decode_tokens else None


_NONE: Any = object()

#: A step's raw fields, in `StepReader._reading`'s order.
_Raw = tuple[Any, ...]


def _num(obj: Any, name: str, missing: list[str], where: str) -> Any:
    value = getattr(obj, name, _NONE)
    if value is _NONE:
        missing.append(f"{where}.{name}")
        return None
    return value


def _int(obj: Any, name: str, missing: list[str], where: str) -> int:
    value = _num(obj, name, missing, where)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        missing.append(f"{where}.{name}")
        return 0
    return value


def _floats(obj: Any, name: str, missing: list[str], where: str) -> Sequence[float]:
    """A list of seconds as vLLM holds it (not copied: vLLM builds a new one each step)."""
    value = _num(obj, name, missing, where)
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        missing.append(f"{where}.{name}")
        return ()
    return value


def _ints(obj: Any, name: str, missing: list[str], where: str) -> Sequence[int]:
    """A list of token counts (non-negative ints), or () noted as missing."""
    value = _num(obj, name, missing, where)
    if value is None:
        return ()
    try:
        return _checked_ints(value)
    except (TypeError, ValueError):
        missing.append(f"{where}.{name}")
        return ()


def _checked_ints(value: Any) -> tuple[int, ...]:
    """`value` as a tuple of non-negative ints; TypeError/ValueError otherwise."""
    if not isinstance(value, list | tuple):
        raise TypeError("not a list")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError("not a count")
    return tuple(value)


def _finished(req: Any, miss: list[str]) -> FinishedRequest:
    e2e = _num(req, "e2e_latency", miss, "finished_request")
    e2e_s = max(float(e2e), 0.0) if isinstance(e2e, int | float) else 0.0
    decode = getattr(req, "decode_time", 0.0)
    decode_s = float(decode) if isinstance(decode, int | float) else 0.0
    prompt = _int(req, "num_prompt_tokens", miss, "finished_request")
    return FinishedRequest(
        e2e_s=e2e_s,
        ttft_s=min(max(e2e_s - decode_s, 0.0), e2e_s),
        prompt_tokens=prompt,
        cached_tokens=min(_int(req, "num_cached_tokens", miss, "finished_request"), prompt),
        generated_tokens=_int(req, "num_generation_tokens", miss, "finished_request"),
        preemptions=_int(req, "num_preemptions", miss, "finished_request"),
    )


def _gather(s: Any, it: Any, miss: list[str]) -> _Raw:
    """The careful path: each field read with a default, the names missing noted in `miss`."""
    running = waiting = None
    kv_usage: float | None = None
    q = h = pq = ph = pr = evicted = drafts = draft_tokens = accepted = eq = eh = 0
    per_position: Sequence[int] = ()
    ctx_tokens: int | None = None
    gen_scheduled: int | None = None
    duration: float | None = None
    if s is not None:
        running = _num(s, "num_running_reqs", miss, "scheduler_stats")
        w = _num(s, "num_waiting_reqs", miss, "scheduler_stats")
        skipped = getattr(s, "num_skipped_waiting_reqs", 0) or 0  # newer vLLMs only
        waiting = None if w is None else int(w) + int(skipped)
        kv_usage = _num(s, "kv_cache_usage", miss, "scheduler_stats")
        pcs = _num(s, "prefix_cache_stats", miss, "scheduler_stats")
        if pcs is not None:
            q = _int(pcs, "queries", miss, "prefix_cache_stats")
            h = _int(pcs, "hits", miss, "prefix_cache_stats")
            pq = _int(pcs, "preempted_queries", miss, "prefix_cache_stats")
            ph = _int(pcs, "preempted_hits", miss, "prefix_cache_stats")
            pr = _int(pcs, "preempted_requests", miss, "prefix_cache_stats")
        evicted = len(getattr(s, "kv_cache_eviction_events", None) or ())
        spec = getattr(s, "spec_decoding_stats", None)
        if spec is not None:
            drafts = _int(spec, "num_drafts", miss, "spec_decoding_stats")
            draft_tokens = _int(spec, "num_draft_tokens", miss, "spec_decoding_stats")
            accepted = _int(spec, "num_accepted_tokens", miss, "spec_decoding_stats")
            per_position = _ints(spec, "num_accepted_tokens_per_pos", miss, "spec_decoding_stats")
        connector = getattr(s, "connector_prefix_cache_stats", None)  # None: no KV connector
        if connector is not None:
            eq = _int(connector, "queries", miss, "connector_prefix_cache_stats")
            eh = _int(connector, "hits", miss, "connector_prefix_cache_stats")
        details = getattr(s, "iteration_details", None)
        if details is not None and not getattr(details, "is_dummy", False):
            ctx_tokens = _int(details, "num_ctx_tokens", miss, "iteration_details")
            gen_scheduled = _int(details, "num_generation_tokens", miss, "iteration_details")
            ms = _num(details, "elapsed_ms", miss, "iteration_details")
            duration = None if ms is None else float(ms) / 1000.0
    preemptions = prompt = cached = computed = local = external = generated = 0
    ttfts: Sequence[float] = ()
    itls: Sequence[float] = ()
    done: list[FinishedRequest] = []
    if it is not None:
        preemptions = _int(it, "num_preempted_reqs", miss, "iteration_stats")
        generated = _int(it, "num_generation_tokens", miss, "iteration_stats")
        pts = _num(it, "prompt_token_stats", miss, "iteration_stats")
        if pts is not None:
            prompt = _int(pts, "total", miss, "prompt_token_stats")
            cached = _int(pts, "cached_tokens", miss, "prompt_token_stats")
            computed = _int(pts, "computed", miss, "prompt_token_stats")
            local = _int(pts, "local_cache_hit", miss, "prompt_token_stats")
            external = _int(pts, "external_kv_transfer", miss, "prompt_token_stats")
        ttfts = _floats(it, "time_to_first_tokens_iter", miss, "iteration_stats")
        itls = _floats(it, "inter_token_latencies_iter", miss, "iteration_stats")
        for req in _num(it, "finished_requests", miss, "iteration_stats") or ():
            done.append(_finished(req, miss))
    return (running, waiting, kv_usage, q, h, pq, ph, pr, evicted, drafts, draft_tokens,
            accepted, per_position, eq, eh, ctx_tokens, gen_scheduled, duration, preemptions,
            prompt, cached, computed, local, external, generated, ttfts, itls,
            done)  # fmt: skip


def _gather_fast(s: Any, it: Any, miss: list[str]) -> _Raw:
    """vLLM 0.32's objects read directly: an AttributeError or TypeError sends the step down
    the careful path (`_gather`)."""
    running = waiting = kv_usage = None
    q = h = pq = ph = pr = evicted = drafts = draft_tokens = accepted = eq = eh = 0
    per_position: Sequence[int] = ()
    ctx_tokens = gen_scheduled = None
    duration = None
    if s is not None:
        running, kv_usage = s.num_running_reqs, float(s.kv_cache_usage)
        waiting = s.num_waiting_reqs + s.num_skipped_waiting_reqs
        pcs = s.prefix_cache_stats
        q, h, pr = pcs.queries + 0, pcs.hits + 0, pcs.preempted_requests + 0
        pq, ph = pcs.preempted_queries + 0, pcs.preempted_hits + 0
        evicted = len(s.kv_cache_eviction_events)
        spec = s.spec_decoding_stats
        if spec is not None:
            drafts, draft_tokens = spec.num_drafts + 0, spec.num_draft_tokens + 0
            accepted = spec.num_accepted_tokens + 0
            per_position = _checked_ints(spec.num_accepted_tokens_per_pos)
        connector = s.connector_prefix_cache_stats
        if connector is not None:
            eq, eh = connector.queries + 0, connector.hits + 0
        details = s.iteration_details
        if details is not None and not details.is_dummy:
            ctx_tokens, gen_scheduled = (
                details.num_ctx_tokens + 0,
                details.num_generation_tokens + 0,
            )
            duration = details.elapsed_ms / 1000.0
    preemptions = prompt = cached = computed = local = external = generated = 0
    ttfts: Sequence[float] = ()
    itls: Sequence[float] = ()
    done: list[FinishedRequest] = []
    if it is not None:
        preemptions, generated = it.num_preempted_reqs + 0, it.num_generation_tokens + 0
        pts = it.prompt_token_stats
        prompt, cached, computed = pts.total + 0, pts.cached_tokens + 0, pts.computed + 0
        local, external = pts.local_cache_hit + 0, pts.external_kv_transfer + 0
        ttfts, itls = list(it.time_to_first_tokens_iter), list(it.inter_token_latencies_iter)
        for req in it.finished_requests:
            done.append(_finished(req, miss))
    return (running, waiting, kv_usage, q, h, pq, ph, pr, evicted, drafts, draft_tokens,
            accepted, per_position, eq, eh, ctx_tokens, gen_scheduled, duration, preemptions,
            prompt, cached, computed, local, external, generated, ttfts, itls,
            done)  # fmt: skip


class StepReader:
    """Reads vLLM's per-step stats for one engine (DP rank); keeps the live-context totals."""

    __slots__ = ("live_context", "live_requests")

    def __init__(self) -> None:
        self.live_context = 0
        """Σ context (prompt + generated tokens) of requests prefilled and not finished."""
        self.live_requests = 0

    def read(self, scheduler_stats: Any, iteration_stats: Any) -> StepReading:
        """Read one step; never raises on odd or missing fields (see `StepReading.missing`).
        vLLM 0.32's objects take the direct path (plain attribute reads); anything else, the
        careful one, field by field."""
        miss: list[str] = []
        try:
            raw = _gather_fast(scheduler_stats, iteration_stats, miss)
        except (AttributeError, TypeError, ValueError):
            miss.clear()
            raw = _gather(scheduler_stats, iteration_stats, miss)
        return self._reading(raw, miss)

    def _reading(self, raw: _Raw, miss: list[str]) -> StepReading:
        (running, waiting, kv_usage, q, h, pq, ph, pr, evicted, drafts, draft_tokens, accepted,
         per_position, eq, eh, ctx_tokens, gen_scheduled, duration, preemptions, prompt, cached,
         computed, local, external, generated, ttfts, itls, done) = raw  # fmt: skip
        finished = len(done)
        finished_context = sum(r.prompt_tokens + r.generated_tokens for r in done) if done else 0
        first_tokens = len(ttfts)
        recomputed = max(pq - ph, 0)
        recompute_tc = recomputed * pq // pr if pr else 0
        # Decode: the live requests before this step's prefills joined them.
        decode = gen_scheduled if gen_scheduled is not None else max(generated - first_tokens, 0)
        mean_live = self.live_context / self.live_requests if self.live_requests > 0 else 0.0
        decode_tc = decode * max(mean_live, 1.0) if decode else 0.0
        prefill_tc = computed * prompt / first_tokens if first_tokens else 0.0
        prefill = ctx_tokens if ctx_tokens is not None else computed + recomputed
        # Advance the live totals: new prefills join; generated tokens grow contexts.
        self.live_context += prompt + generated - finished_context
        self.live_requests += first_tokens - finished
        if self.live_requests <= 0 or self.live_context < 0:
            self.live_requests, self.live_context = max(self.live_requests, 0), 0
        return StepReading(
            running=running if isinstance(running, int) else None,
            waiting=waiting,
            kv_usage=float(kv_usage) if isinstance(kv_usage, int | float) else None,
            prefix_queries=q,
            prefix_hits=h,
            recomputed_tokens=recomputed,
            recompute_token_context=recompute_tc,
            evicted_block_samples=evicted,
            spec_drafts=drafts,
            spec_draft_tokens=draft_tokens,
            spec_accepted_tokens=accepted,
            spec_accepted_per_position=per_position,
            external_queries=eq,
            external_hits=eh,
            prefill_tokens=prefill,
            decode_tokens=decode,
            sequences=first_tokens + decode + (pr if recomputed else 0),
            token_context=prefill_tc + decode_tc + recompute_tc,
            context=(decode_tc + prompt + (pq if recomputed else 0)),
            logits=decode + first_tokens,
            duration_s=duration,
            preemptions=preemptions,
            prompt_tokens=prompt,
            prompt_cached_tokens=cached,
            prompt_computed_tokens=computed,
            prompt_local_cache_tokens=local,
            prompt_external_tokens=external,
            generated_tokens=generated,
            ttfts=ttfts,
            itls=itls,
            e2es=tuple(r.e2e_s for r in done) if done else (),
            finished=tuple(done),
            missing=tuple(miss),
        )
