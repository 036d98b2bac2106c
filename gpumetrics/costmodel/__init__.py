"""The analytic cost model: FLOPs and bytes per step, KV bytes per token, KV capacity.

Pure code with three callers: the hooks (FLOPs/bytes when an engine reports only tokens), the
`roofline` planner and the `profile` report. Conventions are documented in `step`.
"""

from .capacity import KvCapacity, kv_capacity, kv_heads_per_gpu
from .spec import DTYPE_BYTES, PRESETS, ModelSpec, dtype_bytes, find_model, from_hf_config
from .step import (
    RequestWork,
    StepCost,
    causal_pairs,
    decode_batch,
    expected_experts_touched,
    step_cost,
)

__all__ = [
    "DTYPE_BYTES",
    "PRESETS",
    "KvCapacity",
    "ModelSpec",
    "RequestWork",
    "StepCost",
    "causal_pairs",
    "decode_batch",
    "dtype_bytes",
    "expected_experts_touched",
    "find_model",
    "from_hf_config",
    "kv_capacity",
    "kv_heads_per_gpu",
    "step_cost",
]
