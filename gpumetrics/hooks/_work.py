"""FLOPs and bytes of a step or a recompute from the cost model, when the engine omits them.

Kept apart from the hot path: these run only when a `model_spec` was given and the engine did
not pass the numbers itself (building `RequestWork` tuples and summing them costs microseconds,
not nanoseconds).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..costmodel import ModelSpec, RequestWork, step_cost

__all__ = ["WorkTotals", "recompute_flops", "step_work"]

#: (FLOPs, bytes read, bytes written) of one step; units: FLOPs, bytes, bytes.
WorkTotals = tuple[float, float, float]


def step_work(
    spec: ModelSpec | None,
    work: Sequence[RequestWork] | None,
    flops: float | None,
    read_bytes: float | None,
    write_bytes: float | None,
    *,
    dtype: str,
    kv_dtype: str,
) -> WorkTotals:
    """Fill the omitted (None) values of a step from the cost model.

    Without a model spec nothing can be computed: omitted values count as 0 (no FLOPs/bytes
    are counted). With a spec, `work` is required; ValueError otherwise. Bytes read are weights
    plus KV read; bytes written are the new KV entries (`costmodel.step` conventions).
    """
    if spec is None:
        return (flops or 0.0, read_bytes or 0.0, write_bytes or 0.0)
    if not work:
        raise ValueError("work is required when flops/bytes are omitted and a model_spec is set")
    cost = step_cost(spec, work, dtype=dtype, kv_dtype=kv_dtype)
    return (
        cost.flops if flops is None else flops,
        cost.read_bytes if read_bytes is None else read_bytes,
        cost.kv_write_bytes if write_bytes is None else write_bytes,
    )


def recompute_flops(spec: ModelSpec | None, tokens: int, *, dtype: str, kv_dtype: str) -> float:
    """FLOPs wasted re-prefilling `tokens` tokens whose KV was lost (0.0 without a spec).

    The recomputed tokens are the start of a sequence, so they are prefilled with a context of
    `tokens` (attention is quadratic in it). No logits are counted: the token sampled after a
    recompute would have been sampled anyway, so the LM head is not waste.
    """
    if spec is None or tokens == 0:
        return 0.0
    work = (RequestWork(new_tokens=tokens, context=tokens, samples=False),)
    return step_cost(spec, work, dtype=dtype, kv_dtype=kv_dtype).flops
