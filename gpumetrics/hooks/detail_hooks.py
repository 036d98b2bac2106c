"""The detail hooks: calls for the families engines' own pages carry beyond the basics
(speculative decoding, prompt KV by origin, external prefix cache, host offload, preempted
tokens, waiting by reason, sleep state, sampled block residency). Inherited by
`EngineMetrics`; same contract as `metrics.py`: all arguments validated before any update,
an invalid call dropped whole and counted in `hook_errors`, never raising. Token counts must
be ints (a bool, a float, NaN are rejected); seconds may be ints or floats.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence

from ._detail import MAX_POSITIONS, ORIGINS, SLEEP_STATES, count, seconds
from ._state import EngineState

__all__ = ["DetailHooks"]


class DetailHooks(EngineState):
    """Hooks for the detail families (see the module docstring)."""

    __slots__ = ()

    def record_spec_decode(
        self,
        *,
        drafts: int,
        draft_tokens: int,
        accepted_tokens: int,
        accepted_per_position: Sequence[int] = (),
    ) -> None:
        """One step's speculative decoding, summed over its sequences: `drafts` drafts
        proposed (one per sequence that speculated), `draft_tokens` tokens drafted,
        `accepted_tokens` of them accepted; `accepted_per_position[i]` accepted at draft
        position i (optional; when given it adds up to `accepted_tokens`, and no position
        accepts more than `drafts`). At most MAX_POSITIONS positions."""
        try:
            n = count(drafts, "drafts")
            tokens = count(draft_tokens, "draft_tokens")
            accepted = count(accepted_tokens, "accepted_tokens")
            if isinstance(accepted_per_position, str | bytes) or (
                len(accepted_per_position) > MAX_POSITIONS
            ):
                raise ValueError(f"accepted_per_position: at most {MAX_POSITIONS} ints")
            per_position = [count(v, "accepted_per_position") for v in accepted_per_position]
            if accepted > tokens:
                raise ValueError("accepted_tokens exceed draft_tokens")
            if per_position and (sum(per_position) != accepted or max(per_position) > n):
                raise ValueError("accepted_per_position must add up to accepted_tokens")
            detail = self._detail
            positions = detail.positions
            if len(per_position) > len(positions):
                positions += [0] * (len(per_position) - len(positions))
            for i, value in enumerate(per_position):
                positions[i] += value
            if detail.spec is None:
                detail.spec = [n, tokens, accepted]
            else:
                totals = detail.spec
                totals[0] += n
                totals[1] += tokens
                totals[2] += accepted
        except Exception as exc:
            self._drop("record_spec_decode", exc)

    def record_prompt_tokens(self, *, computed: int, local_cache: int, external: int = 0) -> None:
        """A request's prompt once prefilled, by where its KV came from: `computed` tokens
        prefilled here, `local_cache` found in the prefix cache, `external` loaded through a
        KV connector (vLLM's PromptTokenStats). Also observes `computed` in the per-request
        prefill histogram. Call once per request."""
        try:
            values = (
                count(computed, "computed"),
                count(local_cache, "local_cache"),
                count(external, "external"),
            )
            detail = self._detail
            bucket = bisect_left(detail.prefill.bounds, values[0])
            if detail.origins is None:
                detail.origins = [0] * len(ORIGINS)
            origins = detail.origins
            for i, value in enumerate(values):
                origins[i] += value
            detail.prefill.counts[bucket] += 1
            detail.prefill.total += values[0]
        except Exception as exc:
            self._drop("record_prompt_tokens", exc)

    def record_external_prefix_lookup(self, *, queried_tokens: int, hit_tokens: int) -> None:
        """A lookup in an external KV store (KV connector: LMCache, Mooncake, offloading):
        `queried_tokens` prompt tokens looked up, `hit_tokens` of them found there."""
        try:
            queried = count(queried_tokens, "queried_tokens")
            if count(hit_tokens, "hit_tokens") > queried:
                raise ValueError("need hit_tokens <= queried_tokens")
            detail = self._detail
            if detail.external is None:
                detail.external = [0, 0]
            detail.external[0] += queried
            detail.external[1] += hit_tokens
        except Exception as exc:
            self._drop("record_external_prefix_lookup", exc)

    def record_kv_transfer(self, *, evicted_tokens: int = 0, loaded_tokens: int = 0) -> None:
        """KV tokens moved out of the GPU pool to host memory (`evicted_tokens`) and copied
        back instead of being recomputed (`loaded_tokens`), as SGLang's HiCache counts them."""
        try:
            evicted = count(evicted_tokens, "evicted_tokens")
            loaded = count(loaded_tokens, "loaded_tokens")
            detail = self._detail
            if detail.kv_moved is None:
                detail.kv_moved = [0, 0]
            detail.kv_moved[0] += evicted
            detail.kv_moved[1] += loaded
        except Exception as exc:
            self._drop("record_kv_transfer", exc)

    def record_preempted_tokens(self, tokens: int) -> None:
        """Tokens (prompt and generated so far) whose KV a preempted or retracted sequence
        gave up; call beside `record_preemption`."""
        try:
            value = count(tokens, "tokens")
            self._detail.preempted_tokens = (self._detail.preempted_tokens or 0) + value
        except Exception as exc:
            self._drop("record_preempted_tokens", exc)

    def set_waiting_by_reason(self, *, capacity: int, deferred: int) -> None:
        """Queued requests now by why they wait: `capacity` (no room in the batch or KV
        pool), `deferred` (LoRA budget, KV transfer, blocked)."""
        try:
            waiting = (count(capacity, "capacity"), count(deferred, "deferred"))
            self._detail.waiting = waiting
        except Exception as exc:
            self._drop("set_waiting_by_reason", exc)

    def set_sleep_state(self, ranks: Mapping[str, int]) -> None:
        """Engine ranks now in each sleep state, e.g. `{"awake": 1}`: keys among
        awake, weights_offloaded (sleep level 1), discard_all (level 2); absent keys are 0."""
        try:
            if not isinstance(ranks, Mapping) or set(ranks) - set(SLEEP_STATES):
                raise ValueError(f"ranks: a mapping with keys among {SLEEP_STATES}")
            states = tuple(count(ranks.get(s, 0), s) for s in SLEEP_STATES)
            self._detail.sleep = states
        except Exception as exc:
            self._drop("set_sleep_state", exc)

    def record_block_residency(
        self, *, lifetime_s: float, idle_s: float, reuse_gaps_s: Sequence[float] = ()
    ) -> None:
        """One evicted KV block (sample as few as you like, as vLLM's --kv-cache-metrics
        does): seconds from allocation to eviction, seconds idle before eviction (at most the
        lifetime), and the gaps in seconds between its recent uses. O(len(reuse_gaps_s))."""
        try:
            lifetime = seconds(lifetime_s, "lifetime_s")
            if seconds(idle_s, "idle_s") > lifetime:
                raise ValueError("idle_s exceeds lifetime_s")
            if isinstance(reuse_gaps_s, str | bytes) or len(reuse_gaps_s) > MAX_POSITIONS:
                raise ValueError(f"reuse_gaps_s: at most {MAX_POSITIONS} gaps")
            gaps = [seconds(gap, "reuse_gaps_s") for gap in reuse_gaps_s]
            detail = self._detail
            bounds = detail.lifetime.bounds
            buckets = [bisect_left(bounds, gap) for gap in gaps]
            detail.reuse_gap.total += sum(gaps)
            for bucket in buckets:
                detail.reuse_gap.counts[bucket] += 1
            detail.idle.counts[bisect_left(bounds, float(idle_s))] += 1
            detail.idle.total += float(idle_s)
            detail.lifetime.counts[bisect_left(bounds, lifetime)] += 1  # last: the export flag
            detail.lifetime.total += lifetime
        except Exception as exc:
            self._drop("record_block_residency", exc)
