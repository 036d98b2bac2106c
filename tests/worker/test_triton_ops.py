"""The Triton kernels against their torch-native twins (`paged_decode.TorchDecodeOps`).

Without a GPU they run under Triton's interpreter (`TRITON_INTERPRET=1`, CPU tensors, fp32)
in a subprocess, since the variable must be set before triton is imported; skipped when
triton is not installed (torch's CPU wheels don't bring it; its CUDA wheels do). On CUDA the
compiled kernels are checked in bf16 and fp32 (the `gpu` marker).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip(
    "torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'"
)

ROOT = Path(__file__).resolve().parents[2]
NO_TRITON = importlib.util.find_spec("triton") is None

#: (tolerance of kernel vs torch) per dtype: fp32 differs by summation order only; bf16 by
#: one rounding of the output here and there.
TOLERANCE = {torch.float32: 2e-5, torch.bfloat16: 2e-2}


def check_all(device: str, dtype: torch.dtype) -> list[str]:
    """Every op on a few shapes (GQA groups 4 and 1, splits 1 to 16, contexts 1 to past a
    tile); the failures as lines (empty: all agree)."""
    from gpumetrics.worker.paged_decode import TorchDecodeOps, rope_cache  # noqa: PLC0415
    from gpumetrics.worker.triton_ops import TritonDecodeOps  # noqa: PLC0415

    fast, ref = TritonDecodeOps(), TorchDecodeOps()
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    tol = TOLERANCE[dtype]
    failures: list[str] = []

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(dtype=dtype, device=dev)

    def same(what: str, a: torch.Tensor, b: torch.Tensor, scale: float = 1.0) -> None:
        err = (a.float() - b.float()).abs().max().item()
        if not err <= tol * scale:
            failures.append(f"{what}: max |diff| {err:.3g} > {tol * scale:.3g}")

    x, r, w = rand(5, 96), rand(5, 96), rand(96)
    for residual in (None, r):
        (a, ra), (b, rb) = fast.rms_norm(x, w, 1e-5, residual), ref.rms_norm(x, w, 1e-5, residual)
        same(f"rms_norm residual={residual is not None}", a, b, 4.0)
        same("rms_norm sum", ra, rb)
    gu = rand(5, 2 * 80)
    same("silu_mul", fast.silu_mul(gu), ref.silu_mul(gu), 4.0)

    blocks, bs = 24, 4
    for hq, hkv, d in ((8, 2, 32), (4, 4, 16)):
        qkv = rand(3, (hq + 2 * hkv) * d)
        pos = torch.tensor([5, 0, 37], device=dev)
        slots = torch.tensor([9, 30, 71], device=dev)
        cos, sin = rope_cache(64, d, 500_000.0, dtype, dev)
        caches = [torch.zeros(blocks, bs, hkv, d, dtype=dtype, device=dev) for _ in range(4)]
        qa = fast.rope_write(qkv, pos, slots, cos, sin, caches[0], caches[1], hq)
        qb = ref.rope_write(qkv, pos, slots, cos, sin, caches[2], caches[3], hq)
        same(f"rope q {hq}/{hkv}", qa, qb, 4.0)
        same(f"rope k cache {hq}/{hkv}", caches[0], caches[2], 4.0)
        same(f"rope v cache {hq}/{hkv}", caches[1], caches[3])
        k, v = rand(blocks, bs, hkv, d), rand(blocks, bs, hkv, d)
        width, batch = 20, 4
        table = torch.randint(0, blocks, (width, batch), generator=gen)  # [W, B], as stored
        table = table.to(dtype=torch.int32, device=dev)
        context = torch.tensor([1, 80, 13, 65], device=dev)  # 80 > one 64-token tile
        q = rand(batch, hq, d)
        expected = ref.attention(q, k, v, table.t(), context, 0.125, 1)
        for splits in (1, 2, 3, 16):
            got = fast.attention(q, k, v, table.t(), context, 0.125, splits)
            same(f"attention {hq}/{hkv} splits={splits}", got, expected, 2.0)
    return failures


def check_decoder(splits: int, block_n: int) -> list[str]:
    """The whole fast decode step with these kernels (tiny model, fp32, CPU) against the
    reference path's logits on every decode step of a short run."""
    from gpumetrics.costmodel import PRESETS  # noqa: PLC0415
    from gpumetrics.worker import Engine, EngineConfig  # noqa: PLC0415
    from gpumetrics.worker.decode_oracle import reference_decode_logits  # noqa: PLC0415
    from gpumetrics.worker.scheduler import SchedulerOutput  # noqa: PLC0415
    from gpumetrics.worker.triton_ops import TritonDecodeOps  # noqa: PLC0415

    config = EngineConfig(PRESETS["tiny"], kv_blocks=32, block_size=4, max_batch=3,
                          fast_decode="on")  # fmt: skip
    engine = Engine(config)
    fast = engine.runner.fast
    assert fast is not None
    fast.ops = TritonDecodeOps(block_n=block_n)
    fast._splits = dict.fromkeys(fast.sizes, splits)
    decode, failures = fast.decode, []

    def checked(out: SchedulerOutput) -> list[int]:
        expected = reference_decode_logits(
            engine.runner.model, engine.runner.kv, out, torch.device("cpu")
        )
        tokens = decode(out)
        assert fast.last_logits is not None
        err = (fast.last_logits - expected).abs().max().item()
        if not err <= 1e-5:
            failures.append(f"decoder splits={splits}: logits max |diff| {err:.3g}")
        return tokens

    fast.decode = checked  # type: ignore[method-assign]
    for i in range(3):
        engine.add_request([(11 * i + j) % 300 + 1 for j in range(9 + 30 * i)], 4)
    engine.run()
    if fast.steps < 3:
        failures.append(f"only {fast.steps} fast steps ran")
    return failures


_INTERPRETER_FIX = """
# Triton 3.6's interpreter indexes size-1 arrays with int(), which numpy >= 2.3 refuses
# (runtime loop bounds); give it the element instead.
from triton.runtime import interpreter as _i
_patch = _i._patch_lang_tensor
def _patched(tensor, scope):
    _patch(tensor, scope)
    scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))
_i._patch_lang_tensor = _patched
"""


@pytest.mark.skipif(NO_TRITON, reason="triton is not installed (torch's CUDA wheels bring it)")
def test_kernels_equal_torch_ops_under_the_interpreter() -> None:
    code = (
        _INTERPRETER_FIX
        + "import torch\nfrom tests.worker.test_triton_ops import check_all\n"
        + "from tests.worker.test_triton_ops import check_decoder\n"
        + "failures = check_all('cpu', torch.float32)\n"
        + "failures += check_decoder(1, 64) + check_decoder(3, 16)\n"
        + "print('\\n'.join(failures) or 'all equal')\nraise SystemExit(bool(failures))\n"
    )
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "all equal" in result.stdout


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_kernels_equal_torch_ops_on_cuda(dtype: torch.dtype) -> None:
    if NO_TRITON or not torch.cuda.is_available():
        pytest.skip("needs a CUDA device and triton")
    assert check_all("cuda", dtype) == []
