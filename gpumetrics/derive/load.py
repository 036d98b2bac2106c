"""Cache and batch ratios, and the load score. Pure functions over counter deltas/gauges."""

from __future__ import annotations

__all__ = [
    "batch_occupancy",
    "hit_ratio",
    "load_score",
    "mean_batch_size",
    "miss_ratio",
]


def hit_ratio(hit_tokens: float, queried_tokens: float) -> float | None:
    """Prefix-cache hit ratio in tokens over a window: Δhit / Δqueried; None with no traffic.

    Computed from two counters (as vLLM does), not from a last-batch gauge, so that mixed
    traffic weighs every token once.
    """
    if queried_tokens <= 0:
        return None
    return min(1.0, max(0.0, hit_tokens / queried_tokens))


def miss_ratio(hit_tokens: float, queried_tokens: float) -> float | None:
    """1 − hit ratio; None with no traffic."""
    ratio = hit_ratio(hit_tokens, queried_tokens)
    return None if ratio is None else 1.0 - ratio


def mean_batch_size(sequences: float, steps: float) -> float | None:
    """Mean sequences per step over a window: Δ step_sequences / Δ steps."""
    if steps <= 0:
        return None
    return sequences / steps


def batch_occupancy(mean_sequences: float, max_sequences: float) -> float:
    """Mean batch over the configured limit (max_num_seqs), clipped to [0, 1]."""
    if max_sequences <= 0:
        raise ValueError(f"max_sequences must be > 0, got {max_sequences}")
    return min(1.0, max(0.0, mean_sequences / max_sequences))


def load_score(batch_occupancy: float, kv_usage: float) -> float:
    """How loaded an engine is, in [0, 1]: the larger of batch occupancy and KV usage.

    An engine runs out of capacity when either the batch is full (max_num_seqs reached) or the
    KV cache is full (new sequences wait or preempt), whichever comes first: the binding
    constraint sets the load. 1.0 means at capacity; a fleet with every engine near 1.0 and
    requests queued needs more GPUs.
    """
    return min(1.0, max(0.0, batch_occupancy, kv_usage))
