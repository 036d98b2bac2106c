"""State of the hooks' detail families (what engines' own pages carry beyond the basics):
speculative decoding, prompt KV by origin, the external prefix cache, KV moved to and from
host memory, preempted tokens, waiting by reason, sleep state and sampled block residency.

A family is exported once the engine has called its hook (an engine without speculative
decoding or a KV connector exports none of those, as vLLM does); gauges stay unknown (no
sample) until set. Same thread-safety model as `_state.py`: one writer, lock-free readers.
"""

from __future__ import annotations

import operator
import sys
from itertools import accumulate

from ..catalog import engine as cat
from ..samples import HistogramValue, Sample

__all__ = ["MAX_POSITIONS", "ORIGINS", "REASONS", "SLEEP_STATES", "Detail", "count", "seconds"]

MAX = sys.float_info.max
#: The `origin`, `reason` and `sleep_state` label values, in the catalog's words.
ORIGINS = ("computed", "local_cache", "external")
REASONS = ("capacity", "deferred")
SLEEP_STATES = ("awake", "weights_offloaded", "discard_all")
#: Draft positions `record_spec_decode` accepts (vLLM drafts at most a few tens of tokens).
MAX_POSITIONS = 64

PREFILL_BOUNDS = cat.REQUEST_PREFILL_COMPUTED.buckets
RESIDENCY_BOUNDS = cat.KV_BLOCK_LIFETIME.buckets


def is_whole(value: object) -> bool:
    """Whether `value` counts as a whole number for every hook: an int or an int-like with
    `__index__` (numpy's integers), not a bool (`True` is a flag, not one token)."""
    kind = type(value)
    return kind is int or (kind is not bool and hasattr(kind, "__index__"))


def count(value: object, what: str) -> int:
    """`value` as an int if it is whole (`is_whole`) and >= 0, else ValueError."""
    if not is_whole(value):
        raise ValueError(f"{what} must be an int >= 0, got {value!r}")
    number = operator.index(value)  # type: ignore[arg-type]
    if not 0 <= number <= MAX:
        raise ValueError(f"{what} must be an int >= 0, got {value!r}")
    return number


def seconds(value: object, what: str) -> float:
    """`value` if it is a finite int or float >= 0 (not a bool), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX:
        raise ValueError(f"{what} must be finite seconds >= 0, got {value!r}")
    return float(value)


class Histogram:
    """Per-bucket counts (last slot above the largest bound) and the sum of observations."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def value(self) -> HistogramValue:
        cumulative = tuple(accumulate(self.counts[:]))  # one copy: +Inf bucket == count
        return HistogramValue(self.bounds, cumulative[:-1], self.total, cumulative[-1])


class Detail:
    """The detail families' values; `None` / empty until the engine first reports them."""

    __slots__ = (
        "external",
        "idle",
        "kv_moved",
        "lifetime",
        "origins",
        "positions",
        "preempted_tokens",
        "prefill",
        "reuse_gap",
        "sleep",
        "spec",
        "waiting",
    )

    def __init__(self) -> None:
        self.spec: list[int] | None = None  # drafts, draft tokens, accepted tokens
        self.positions: list[int] = []  # accepted tokens per draft position
        self.origins: list[int] | None = None  # prompt KV tokens per ORIGINS
        self.prefill = Histogram(PREFILL_BOUNDS)
        self.external: list[int] | None = None  # queried, hit
        self.kv_moved: list[int] | None = None  # evicted to host, loaded back
        self.preempted_tokens: int | None = None
        self.waiting: tuple[int, ...] | None = None  # per REASONS, replaced whole
        self.sleep: tuple[int, ...] | None = None  # ranks per SLEEP_STATES, replaced whole
        self.lifetime = Histogram(RESIDENCY_BOUNDS)
        self.idle = Histogram(RESIDENCY_BOUNDS)
        self.reuse_gap = Histogram(RESIDENCY_BOUNDS)

    def samples(self, e: str, m: str) -> list[Sample]:
        """The reported families as catalog samples (the caller puts them in catalog order)."""
        out: list[Sample] = []
        spec = self.spec
        if spec is not None:
            drafts, tokens, accepted = spec[:]
            out += [
                cat.SPEC_DRAFTS.sample(drafts, e, m),
                cat.SPEC_DRAFT_TOKENS.sample(tokens, e, m),
                cat.SPEC_ACCEPTED_TOKENS.sample(accepted, e, m),
            ]
            out += [
                cat.SPEC_POSITION_ACCEPTED.sample(n, e, m, str(i))
                for i, n in enumerate(self.positions[:])
            ]
        origins = self.origins
        if origins is not None:
            out += [
                cat.PROMPT_KV_TOKENS.sample(n, e, m, o)
                for o, n in zip(ORIGINS, origins[:], strict=True)
            ]
            out.append(cat.REQUEST_PREFILL_COMPUTED.sample(self.prefill.value(), e, m))
        if self.external is not None:
            queried, hit = self.external[:]
            out.append(cat.EXTERNAL_PREFIX_QUERIED.sample(queried, e, m))
            out.append(cat.EXTERNAL_PREFIX_HIT.sample(hit, e, m))
        if self.kv_moved is not None:
            evicted, loaded = self.kv_moved[:]
            out.append(cat.KV_EVICTED_TOKENS.sample(evicted, e, m))
            out.append(cat.KV_LOADED_TOKENS.sample(loaded, e, m))
        if self.preempted_tokens is not None:
            out.append(cat.PREEMPTED_TOKENS.sample(self.preempted_tokens, e, m))
        waiting = self.waiting
        if waiting is not None:
            out += [
                cat.WAITING_BY_REASON.sample(n, e, m, r)
                for r, n in zip(REASONS, waiting, strict=True)
            ]
        sleep = self.sleep
        if sleep is not None:
            out += [
                cat.SLEEP_STATE.sample(n, e, m, s) for s, n in zip(SLEEP_STATES, sleep, strict=True)
            ]
        if any(self.lifetime.counts):  # every residency call observes a lifetime
            out.append(cat.KV_BLOCK_LIFETIME.sample(self.lifetime.value(), e, m))
            out.append(cat.KV_BLOCK_IDLE.sample(self.idle.value(), e, m))
            out.append(cat.KV_BLOCK_REUSE_GAP.sample(self.reuse_gap.value(), e, m))
        return out
