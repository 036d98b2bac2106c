"""The analytic cost model: FLOPs and bytes per step, KV bytes per token, KV capacity.

Pure code with three callers: the hooks (FLOPs/bytes when an engine reports only tokens), the
`roofline` planner and the `profile` report. Conventions are documented in `step`.
"""

from .activations import (
    DEFAULT_PREFILL_CHUNK,
    MIN_RESERVE_BYTES,
    Reserve,
    activation_bytes,
    activation_reserve,
)
from .capacity import KvCapacity, check_tp, kv_capacity, kv_heads_per_gpu, valid_tp
from .spec import (
    DTYPE_BYTES,
    PRESETS,
    ModelSpec,
    dtype_bytes,
    find_model,
    from_hf_config,
    from_hf_dict,
)
from .step import (
    RequestWork,
    StepCost,
    causal_pairs,
    decode_batch,
    expected_experts_touched,
    step_cost,
)

__all__ = [
    "DEFAULT_PREFILL_CHUNK",
    "DTYPE_BYTES",
    "MIN_RESERVE_BYTES",
    "PRESETS",
    "KvCapacity",
    "ModelSpec",
    "RequestWork",
    "Reserve",
    "StepCost",
    "activation_bytes",
    "activation_reserve",
    "causal_pairs",
    "check_tp",
    "decode_batch",
    "dtype_bytes",
    "expected_experts_touched",
    "find_model",
    "from_hf_config",
    "from_hf_dict",
    "kv_capacity",
    "kv_heads_per_gpu",
    "step_cost",
    "valid_tp",
]
