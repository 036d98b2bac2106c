"""Hand-computed KV-cache capacity.

capacity = floor((memory·fraction − weights/tp − reserve) / (2·L·ceil(Hkv/tp)·d·kv_b)),
memory = the total NVML reports; reserve = the activation reserve (1 GiB floor) unless given.
"""

from __future__ import annotations

import math

import pytest

from gpumetrics.costmodel import (
    PRESETS,
    ModelSpec,
    check_tp,
    kv_capacity,
    kv_heads_per_gpu,
    valid_tp,
)
from gpumetrics.errors import ConfigError

GIB = 2**30
H200_MEMORY = 150_754_820_096  # NVML on a real H200 (143,771 MiB), not 141 GiB
H100_MEMORY = 81559 * 2**20  # NVML on an H100 80GB HBM3, not 80 GiB

LLAMA_8B_PARAMS = 32 * (4096 * 48 * 128 + 4096 * 4096 + 3 * 4096 * 14336 + 2 * 4096) + (
    2 * 128256 * 4096 + 4096
)
LLAMA_70B_PARAMS = 80 * (8192 * 80 * 128 + 8192 * 8192 + 3 * 8192 * 28672 + 2 * 8192) + (
    2 * 128256 * 8192 + 8192
)


def test_param_counts_used_below() -> None:
    assert LLAMA_8B_PARAMS == 8_030_261_248
    assert LLAMA_70B_PARAMS == 70_553_706_496
    assert PRESETS["llama-3-8b"].total_params == LLAMA_8B_PARAMS
    assert PRESETS["llama-3-70b"].total_params == LLAMA_70B_PARAMS


def test_llama3_8b_on_h200() -> None:
    cap = kv_capacity(PRESETS["llama-3-8b"], H200_MEMORY)
    weights = LLAMA_8B_PARAMS * 2
    assert weights == 16_060_522_496
    # Activations of an 8,192-token chunk (0.90 GiB) are under the 1 GiB floor.
    assert cap.reserve.bytes == GIB
    budget = H200_MEMORY * 0.9 - weights - GIB  # 117,545,071,766.4
    per_token = 2 * 32 * 8 * 128 * 2
    assert per_token == 131072
    assert cap.weight_bytes_per_gpu == weights
    assert cap.kv_budget_bytes == pytest.approx(budget, rel=1e-12)
    assert cap.kv_bytes_per_token == per_token
    assert cap.tokens == math.floor(budget / per_token)
    assert cap.tokens == 904_427
    assert cap.weights_fit
    assert cap.sequences(4096) == 904_427 // 4096 == 220
    assert cap.sequences(512) == 1766


def test_llama3_8b_on_h200_fp8_kv_and_reserve() -> None:
    reserve = 4 * GIB
    cap = kv_capacity(PRESETS["llama-3-8b"], H200_MEMORY, kv_dtype="fp8", reserve_bytes=reserve)
    budget = H200_MEMORY * 0.9 - 16_060_522_496 - 4 * GIB
    assert cap.reserve.bytes == reserve
    assert cap.kv_bytes_per_token == 65536
    assert cap.tokens == math.floor(budget / 65536)
    assert cap.tokens == 1_759_702


def test_llama3_8b_on_h200_fp8_weights_fraction() -> None:
    cap = kv_capacity(PRESETS["llama-3-8b"], H200_MEMORY, dtype="fp8", memory_fraction=0.95)
    budget = H200_MEMORY * 0.95 - 8_030_261_248 - GIB
    assert cap.weight_bytes_per_gpu == 8_030_261_248
    assert cap.tokens == math.floor(budget / 131072)


@pytest.mark.parametrize(
    ("tp", "heads_per_gpu"),
    [(1, 8), (2, 4), (4, 2), (8, 1), (16, 1), (32, 1)],
)
def test_kv_heads_per_gpu(tp: int, heads_per_gpu: int) -> None:
    assert kv_heads_per_gpu(PRESETS["llama-3-70b"], tp) == heads_per_gpu
    assert heads_per_gpu == max(1, math.ceil(8 / tp))


def test_llama3_70b_tp8_on_h100() -> None:
    cap = kv_capacity(PRESETS["llama-3-70b"], H100_MEMORY, tp=8)
    weights_per_gpu = LLAMA_70B_PARAMS * 2 / 8
    assert weights_per_gpu == 17_638_426_624
    per_token = 2 * 80 * 1 * 128 * 2  # one KV head per GPU
    assert per_token == 40960
    budget = H100_MEMORY * 0.9 - weights_per_gpu - GIB
    assert cap.weight_bytes_per_gpu == weights_per_gpu
    assert cap.kv_bytes_per_token == per_token
    assert cap.tokens == math.floor(budget / per_token)
    assert cap.tokens == 1_422_279
    assert cap.weights_fit


def test_llama3_70b_tp16_replicates_kv_heads() -> None:
    """Beyond tp=8 each GPU still holds one whole KV head: per-token KV per GPU stays 40 KiB,
    only the weights share halves."""
    cap8 = kv_capacity(PRESETS["llama-3-70b"], H100_MEMORY, tp=8)
    cap16 = kv_capacity(PRESETS["llama-3-70b"], H100_MEMORY, tp=16)
    weights_per_gpu = LLAMA_70B_PARAMS * 2 / 16
    assert weights_per_gpu == 8_819_213_312
    budget = H100_MEMORY * 0.9 - weights_per_gpu - GIB
    assert cap16.weight_bytes_per_gpu == weights_per_gpu
    assert cap16.kv_bytes_per_token == 40960  # not 20480
    assert cap16.tokens == math.floor(budget / 40960)
    assert cap16.tokens == 1_637_592
    # Twice the GPUs, far less than twice the tokens: only the weight share was freed.
    assert cap16.tokens - cap8.tokens == 1_637_592 - 1_422_279
    assert cap16.tokens < 2 * cap8.tokens


def test_llama3_70b_tp2_on_h200() -> None:
    cap = kv_capacity(PRESETS["llama-3-70b"], H200_MEMORY, tp=2)
    # 70B activations at tp=2 (1.19 GiB, see test_activations) exceed the 1 GiB floor.
    reserve = 2 * 8192 * (8192 + max(8192 + 80 * 128 // 2 + 64 * 128 // 2, 8192 + 86016 // 2))
    reserve += 4 * 256 * 128256
    assert cap.reserve.bytes == reserve
    budget = H200_MEMORY * 0.9 - LLAMA_70B_PARAMS * 2 / 2 - reserve
    per_token = 2 * 80 * 4 * 128 * 2
    assert cap.kv_bytes_per_token == per_token
    assert cap.tokens == math.floor(budget / per_token)


def test_weights_that_do_not_fit() -> None:
    cap = kv_capacity(PRESETS["llama-3-70b"], H100_MEMORY)  # 141 GB of bf16 weights on 80 GB
    assert cap.weight_bytes_per_gpu == LLAMA_70B_PARAMS * 2
    assert not cap.weights_fit
    assert cap.tokens == 0
    assert cap.sequences(1) == 0


def test_weights_fit_but_reserve_eats_the_rest() -> None:
    cap = kv_capacity(PRESETS["llama-3-8b"], 24 * GIB, reserve_bytes=8 * GIB)
    # 24 GiB·0.9 − 14.96 GiB of weights − 8 GiB < 0
    assert 24 * GIB * 0.9 - 16_060_522_496 - 8 * GIB < 0
    assert cap.tokens == 0


def test_default_reserve_alone_can_leave_no_kv() -> None:
    """18 GiB·0.9 = 16.2 GiB: the 8B's 14.96 GiB of weights fit, the 1 GiB reserve on top
    leaves 0.24 GiB; 17.5 GiB·0.9 leaves none once the reserve is counted."""
    assert kv_capacity(PRESETS["llama-3-8b"], 18 * GIB).tokens == math.floor(
        (18 * GIB * 0.9 - 16_060_522_496 - GIB) / 131072
    )
    cap = kv_capacity(PRESETS["llama-3-8b"], 17.5 * GIB)
    assert 17.5 * GIB * 0.9 - 16_060_522_496 > 0  # weights alone would leave room
    assert cap.tokens == 0
    assert not cap.weights_fit


@pytest.mark.parametrize(
    ("model", "tp"),
    [
        # 40 heads (Qwen2.5-14B, Llama-2-13B shape): vLLM refuses --tp 3
        (ModelSpec("h40", 2, 5120, 40, 8, 128, 64, 100), 3),
        (ModelSpec("h40", 2, 5120, 40, 8, 128, 64, 100), 16),
        # heads divide, KV heads do not: Qwen2.5-7B's 28 heads / 4 KV heads at tp 7
        (PRESETS["qwen2.5-7b"], 7),
        (PRESETS["llama-3-70b"], 3),
        (PRESETS["llama-3-8b"], 6),
    ],
)
def test_tp_that_does_not_divide_heads_is_refused(model: ModelSpec, tp: int) -> None:
    with pytest.raises(ConfigError, match=rf"^tp: {tp} .*(attention|KV) heads") as info:
        kv_capacity(model, H200_MEMORY, tp=tp)
    assert "\n" not in str(info.value)
    assert str(tp) not in str(info.value).split("valid: ")[1].split(", ")


def test_valid_tp_by_hand() -> None:
    # Divisors of 40 heads: 1 2 4 5 8 10 20 40; KV heads 8: below 8 must divide 8 (1 2 4),
    # from 8 on must be a multiple of 8 (8 40): 5, 10 and 20 are refused.
    h40 = ModelSpec("h40", 2, 5120, 40, 8, 128, 64, 100)
    assert valid_tp(h40) == (1, 2, 4, 8, 40)
    assert valid_tp(PRESETS["qwen2.5-7b"]) == (1, 2, 4, 28)
    assert valid_tp(PRESETS["llama-3-8b"]) == (1, 2, 4, 8, 16, 32)
    for tp in valid_tp(h40):
        check_tp(h40, tp)


def test_tiny_exact_floor() -> None:
    """Small integers: budget 10,000 − 1,576 = 8,424 bytes, 96 bytes per token → 87 tokens."""
    tiny = ModelSpec(
        name="cap-tiny",
        layers=3,
        hidden=4,
        heads=2,
        kv_heads=1,
        head_dim=8,
        intermediate=4,
        vocab=5,
    )
    params = 3 * (4 * 4 * 8 + 2 * 8 * 4 + 3 * 4 * 4 + 2 * 4) + 2 * 5 * 4 + 4
    assert tiny.total_params == params == 788
    cap = kv_capacity(tiny, 10_000, memory_fraction=1.0, reserve_bytes=0)
    assert cap.weight_bytes_per_gpu == 1576
    assert cap.kv_bytes_per_token == 2 * 3 * 1 * 8 * 2 == 96
    assert cap.tokens == 8424 // 96 == 87
    assert cap.sequences(10) == 8
