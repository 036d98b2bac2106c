"""FLOPs and bytes the hooks compute from the cost model equal a hand computation.

Model SMALL: L=2, D=8, Hq=2, Hkv=1, d=4, I=16, V=10 (REFERENCE.md §2 symbols). The step is one
decode (n=1, c=5) plus one fresh prefill of 3 tokens (n=3, c=3): T=4, TC=1·5+3·3=14, C=8,
N_logits=2.
"""

from __future__ import annotations

import pytest

from gpumetrics.catalog import engine as cat
from gpumetrics.costmodel import RequestWork
from gpumetrics.hooks import EngineMetrics
from gpumetrics.testing.sample_values import sample_values

from .helpers import SMALL

L = ("e0", "m0")
WORK = [RequestWork.decode(5), RequestWork.prefill(3)]

# FLOPs, term by term:
QKV = 2 * 4 * 8 * (2 + 2 * 1) * 4 * 2  # 2·T·D·(Hq+2Hkv)·d·L = 2048
O_PROJ = 2 * 4 * 2 * 4 * 8 * 2  # 2·T·Hq·d·D·L = 1024
ATTENTION = 4 * 2 * 4 * 2 * 14  # 4·Hq·d·L·TC = 896 (no causal halving)
FFN = 2 * 4 * 8 * 3 * 16 * 2  # 2·T·D·3I·L = 6144
LM_HEAD = 2 * 2 * 8 * 10  # 2·N_logits·D·V = 320
STEP_FLOPS = QKV + O_PROJ + ATTENTION + FFN + LM_HEAD  # 10432
# Bytes (bf16 = 2 bytes): weights once, K and V of the whole context read, new K and V written.
WEIGHT_ELEMENTS = 2 * (8 * (2 + 2) * 4 + 2 * 4 * 8 + 3 * 8 * 16) + 8 * 10  # 1232
KV_READ = 2 * 1 * 4 * 2 * 2 * 8  # 2·Hkv·d·kv_b·L·C = 256
KV_WRITE = 2 * 4 * 1 * 4 * 2 * 2  # 2·T·Hkv·d·kv_b·L = 128


def _step(m: EngineMetrics, **explicit: float) -> None:
    m.record_step(
        phase="mixed",
        sequences=2,
        prefill_tokens=3,
        decode_tokens=1,
        duration_s=0.01,
        work=WORK,
        **explicit,
    )


def test_step_flops_and_bytes_match_the_hand_computation() -> None:
    assert STEP_FLOPS == 10432
    m = EngineMetrics("e0", "m0", model_spec=SMALL)
    _step(m)
    _step(m)
    got = sample_values(m.snapshot())
    assert got[(cat.FLOPS.name, L)] == 2 * STEP_FLOPS
    assert got[(cat.READ_BYTES.name, L)] == 2 * (WEIGHT_ELEMENTS * 2 + KV_READ)
    assert got[(cat.WRITE_BYTES.name, L)] == 2 * KV_WRITE
    assert m.hook_errors == 0


def test_dtypes_reach_the_cost_model() -> None:
    m = EngineMetrics("e0", "m0", model_spec=SMALL, dtype="fp8", kv_dtype="fp32")
    _step(m)
    got = sample_values(m.snapshot())
    assert got[(cat.READ_BYTES.name, L)] == WEIGHT_ELEMENTS * 1 + KV_READ * 2
    assert got[(cat.WRITE_BYTES.name, L)] == KV_WRITE * 2


def test_explicit_values_win_and_only_omitted_ones_are_computed() -> None:
    m = EngineMetrics("e0", "m0", model_spec=SMALL)
    _step(m, flops=7.0)
    got = sample_values(m.snapshot())
    assert got[(cat.FLOPS.name, L)] == 7.0
    assert got[(cat.READ_BYTES.name, L)] == WEIGHT_ELEMENTS * 2 + KV_READ
    assert got[(cat.WRITE_BYTES.name, L)] == KV_WRITE


def test_without_a_model_spec_nothing_is_computed() -> None:
    m = EngineMetrics("e0", "m0")
    _step(m)
    got = sample_values(m.snapshot())
    assert got[(cat.STEPS.name, (*L, "mixed"))] == 1
    assert got[(cat.FLOPS.name, L)] == 0
    assert got[(cat.READ_BYTES.name, L)] == 0
    assert m.hook_errors == 0


def test_with_a_model_spec_work_is_required() -> None:
    m = EngineMetrics("e0", "m0", model_spec=SMALL)
    m.record_step(phase="decode", sequences=1, prefill_tokens=0, decode_tokens=1, duration_s=0.01)
    assert m.hook_errors == 1
    assert (
        sample_values(m.snapshot())[(cat.STEPS.name, (*L, "decode"))] == 0
    )  # dropped whole, not half-applied


def test_recompute_flops_are_the_prefill_cost_without_logits() -> None:
    # 6 recomputed tokens from the start of a sequence: T=6, TC=6·6=36, no LM head.
    expected = (
        2 * 6 * 8 * 4 * 4 * 2  # QKV 3072
        + 2 * 6 * 2 * 4 * 8 * 2  # O 1536
        + 4 * 2 * 4 * 2 * 36  # attention 2304 (quadratic in the recomputed length)
        + 2 * 6 * 8 * 3 * 16 * 2  # FFN 9216
    )
    m = EngineMetrics("e0", "m0", model_spec=SMALL)
    m.record_recompute(6)
    m.record_recompute(0)
    got = sample_values(m.snapshot())
    assert got[(cat.RECOMPUTED_TOKENS.name, L)] == 6
    assert got[(cat.RECOMPUTED_FLOPS.name, L)] == pytest.approx(expected) == 16128
    assert m.hook_errors == 0
