"""Every Triton kernel of the fast decode path compiles for Hopper (sm_90) — here, with no GPU.

Triton compiles ahead of time from a signature: Python → TTIR → TTGIR → LLVM IR → PTX → cubin
(its wheel carries ptxas), so a kernel that would fail to build on the H200 (an annotation the
compiler refuses, a shape it cannot lower, a bad constexpr) fails this test on CPU. The
signatures are those of the 1B preset's decode step (bf16, 32 query / 8 KV heads of 64, blocks
of 16 tokens); the interpreter tests (test_triton_ops.py) check what the kernels compute.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

triton = pytest.importorskip("triton", reason="triton is not installed (dev extra, x86-64 Linux)")

from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from gpumetrics.worker import triton_ops  # noqa: E402

if os.environ.get("TRITON_INTERPRET") == "1":  # pragma: no cover - the interpreter jit
    pytest.skip("TRITON_INTERPRET=1: kernels are not compiled", allow_module_level=True)

HOPPER = GPUTarget("cuda", 90, 32)
BF16, FP32, I64 = "*bf16", "*fp32", "*i64"
CX = "constexpr"

KERNELS: dict[str, tuple[str, dict[str, str], dict[str, Any]]] = {
    "rms_norm": (
        "_rms_norm",
        {"x_ptr": BF16, "res_ptr": BF16, "w_ptr": BF16, "out_ptr": BF16, "res_out_ptr": BF16,
         "hidden": "i32", "eps": "fp32", "HAS_RES": CX, "BLOCK": CX},
        {"HAS_RES": True, "BLOCK": 2048},
    ),
    "rope_write": (
        "_rope_write",
        {"qkv_ptr": BF16, "pos_ptr": I64, "slot_ptr": I64, "cos_ptr": BF16, "sin_ptr": BF16,
         "q_ptr": BF16, "k_cache_ptr": BF16, "v_cache_ptr": BF16, "qkv_stride": "i32",
         "HQ": CX, "HKV": CX, "D": CX, "BLOCK_H": CX, "BLOCK_KV": CX},
        {"HQ": 32, "HKV": 8, "D": 64, "BLOCK_H": 64, "BLOCK_KV": 8},
    ),
    "attention": (
        "_attention",
        {"q_ptr": BF16, "k_cache_ptr": BF16, "v_cache_ptr": BF16, "table_ptr": I64,
         "ctx_ptr": I64, "out_ptr": BF16, "part_o_ptr": FP32, "part_lse_ptr": FP32,
         "scale": "fp32", "table_stride_b": "i32", "table_stride_w": "i32", "HQ": CX,
         "HKV": CX, "D": CX, "BS": CX, "BLOCK_G": CX, "BLOCK_N": CX, "SPLITS": CX, "IEEE": CX},
        {"HQ": 32, "HKV": 8, "D": 64, "BS": 16, "BLOCK_G": 16, "BLOCK_N": 64, "SPLITS": 4,
         "IEEE": False},
    ),
    "merge": (
        "_merge",
        {"part_o_ptr": FP32, "part_lse_ptr": FP32, "out_ptr": BF16, "D": CX, "SPLITS": CX,
         "BLOCK_S": CX},
        {"D": 64, "SPLITS": 4, "BLOCK_S": 4},
    ),
    "silu_mul": (
        "_silu_mul",
        {"gu_ptr": BF16, "out_ptr": BF16, "inter": "i32", "BLOCK": CX},
        {"BLOCK": 1024},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_compiles_to_a_hopper_cubin(name: str) -> None:
    attr, signature, constexprs = KERNELS[name]
    kernel = getattr(triton_ops, attr)
    compiled = triton.compile(ASTSource(kernel, signature, constexprs=constexprs), target=HOPPER)
    assert compiled.asm["cubin"], f"{name}: no cubin"
    assert ".target sm_90" in compiled.asm["ptx"]
