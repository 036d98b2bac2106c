"""The activation reserve against hand-computed peaks (costmodel/activations.py docstring).

peak = a·T·(D + max(D + ((Hq+2Hkv)·d + Hq·d)/tp, D + 3·k·I/tp)) + 4·S·V
"""

from __future__ import annotations

import pytest

from gpumetrics.costmodel import (
    MIN_RESERVE_BYTES,
    PRESETS,
    ModelSpec,
    activation_bytes,
    activation_reserve,
)
from gpumetrics.errors import ConfigError

GIB = 2**30


def test_llama3_8b_chunk_by_hand() -> None:
    # D=4096, Hq=32, Hkv=8, d=128, I=14336, V=128256; T=8192 tokens, 256 sampling.
    attention = 4096 + (48 * 128 + 32 * 128)  # 14,336 elements per token
    ffn = 4096 + 3 * 14336  # 47,104: the FFN is the peak
    per_token = 4096 + max(attention, ffn)
    assert per_token == 51_200
    expected = 2 * 8192 * per_token + 4 * 256 * 128256
    assert expected == 970_194_944
    model = PRESETS["llama-3-8b"]
    assert activation_bytes(model, 8192, sampling_sequences=256) == expected
    reserve = activation_reserve(model)
    assert reserve.bytes == MIN_RESERVE_BYTES == GIB  # 0.90 GiB is under the floor
    assert "at least 1 GiB" in reserve.why
    assert "925.2 MiB" in reserve.why  # 970,194,944 / 2**20 = 925.25


def test_llama3_70b_chunk_exceeds_the_floor() -> None:
    # D=8192, Hq=64, Hkv=8, d=128, I=28672
    per_token = 8192 + max(8192 + (80 + 64) * 128, 8192 + 3 * 28672)
    expected = 2 * 8192 * per_token + 4 * 256 * 128256
    assert expected == 1_809_055_744  # 1.68 GiB
    reserve = activation_reserve(PRESETS["llama-3-70b"])
    assert reserve.bytes == expected
    assert reserve.why == "activations of a prefill chunk of 8,192 tokens"


def test_tp_splits_the_column_parallel_outputs_only() -> None:
    model = PRESETS["llama-3-70b"]
    # tp=8: the residual and the normed input stay whole; QKV, attention out, gate/up split.
    per_token = 8192 + max(8192 + (80 + 64) * 128 / 8, 8192 + 3 * 28672 / 8)
    assert per_token == 8192 + 8192 + 10752
    expected = 2 * 8192 * per_token + 4 * 256 * 128256
    assert activation_bytes(model, 8192, sampling_sequences=256, tp=8) == expected
    assert activation_reserve(model, tp=8).bytes == GIB  # 0.54 GiB: the floor


def test_moe_counts_active_experts_and_small_numbers() -> None:
    # L=1, D=4, Hq=2, Hkv=1, d=2, I=3, V=5, 4 experts top-2; T=3, S=1, fp32 activations.
    moe = ModelSpec("m", 1, 4, 2, 1, 2, 3, 5, experts=4, active_experts=2)
    attention = 4 + (4 * 2 + 2 * 2)  # 16
    ffn = 4 + 3 * 2 * 3  # 22
    expected = 4 * 3 * (4 + max(attention, ffn)) + 4 * 1 * 5
    assert expected == 332
    assert activation_bytes(moe, 3, sampling_sequences=1, act_dtype="fp32") == expected


def test_bad_arguments() -> None:
    model = PRESETS["tiny"]
    with pytest.raises(ConfigError, match="tokens"):
        activation_bytes(model, 0)
    with pytest.raises(ConfigError, match="tp"):
        activation_bytes(model, 1, tp=0)
    with pytest.raises(ConfigError, match="sampling_sequences"):
        activation_bytes(model, 1, sampling_sequences=-1)
