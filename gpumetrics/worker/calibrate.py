"""Achievable peaks of a device, measured with torch: matmul FLOP/s and copy bandwidth.

Datasheet peaks are upper bounds nobody reaches; a CPU has no datasheet row at all. This
measures what the device does on the profile's own dtype, so a roofline has honest roofs:

* matmul: a square n x n @ n x n product (2·n³ FLOPs), n = 1024 on CPU, 8192 on CUDA
  (REFERENCE.md §1: an H200 reaches ≈ 770–800 TFLOP/s in bf16 at 8192³);
* copy: `dst.copy_(src)` of a buffer far larger than the caches (64 MiB on CPU, 1 GiB on
  CUDA), counting read + write (2 x the buffer per copy), as the H200's ≈ 4.3 TB/s is counted.

Each is the best of `trials` timed runs (after one warm-up), synchronised on CUDA. The command
line equivalent: `gpumetrics profile --calibrate`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ..profile.measure import Calibration
from .runner import check_device

__all__ = ["DTYPES", "calibrate"]

#: Calibration dtypes and their torch types.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def calibrate(
    device: str,
    dtype: str | None = None,
    *,
    matmul_size: int | None = None,
    copy_bytes: int | None = None,
    trials: int = 5,
) -> Calibration:
    """Measure achievable matmul FLOP/s and copy bytes/s on `device` (cpu | cuda[:N]) in
    `dtype` (default: fp32 on CPU, bf16 on CUDA, the worker's own defaults). ValueError for
    an unusable device or dtype."""
    dev = check_device(device)
    cuda = dev.type == "cuda"
    name = dtype or ("bf16" if cuda else "fp32")
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {name!r}")
    if trials <= 0:
        raise ValueError(f"trials must be > 0, got {trials}")
    torch_dtype = DTYPES[name]
    n = matmul_size or (8192 if cuda else 1024)
    size = copy_bytes or (1 << 30 if cuda else 64 << 20)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    repeats = 10 if cuda else 2
    matmul_s = _matmul_seconds(n, torch_dtype, dev, sync, trials, repeats)
    copy_s, moved = _copy_seconds(size, torch_dtype, dev, sync, trials, repeats)
    if cuda:
        torch.cuda.empty_cache()
    return Calibration(
        device=str(dev),
        dtype=name,
        matmul_flops=2.0 * n**3 / matmul_s,
        copy_bandwidth=2.0 * moved / copy_s,
        matmul_size=n,
        copy_bytes=moved,
        trials=trials,
    )


def _matmul_seconds(
    n: int,
    dtype: torch.dtype,
    dev: torch.device,
    sync: Callable[[], None],
    trials: int,
    repeats: int,
) -> float:
    """Seconds per n x n @ n x n matmul (seeded random operands)."""
    generator = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, dtype=dtype, device=dev, generator=generator)
    b = torch.randn(n, n, dtype=dtype, device=dev, generator=generator)
    out = torch.empty(n, n, dtype=dtype, device=dev)
    return _best(lambda: torch.matmul(a, b, out=out), sync, trials, repeats)


def _copy_seconds(
    size: int,
    dtype: torch.dtype,
    dev: torch.device,
    sync: Callable[[], None],
    trials: int,
    repeats: int,
) -> tuple[float, int]:
    """Seconds per copy of a `size`-byte buffer, and the bytes one copy reads."""
    elements = max(1, size // torch.empty((), dtype=dtype).element_size())
    src = torch.ones(elements, dtype=dtype, device=dev)
    dst = torch.empty_like(src)
    return _best(lambda: dst.copy_(src), sync, trials, repeats), src.numel() * src.element_size()


def _best(work: Callable[[], object], sync: Callable[[], None], trials: int, repeats: int) -> float:
    """Seconds per call of `work`: the best trial's mean over `repeats` calls, after one
    warm-up call."""
    work()
    sync()
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(repeats):
            work()
        sync()
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best
