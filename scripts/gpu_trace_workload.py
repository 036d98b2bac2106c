"""The workload behind gpu-check's NVML/GPM trace: idle, a bf16 matmul loop, a device copy
loop, a storm of tiny kernels, each followed by a settling pause, with every phase change
written to a phases file as `<epoch> <phase> [key=value ...]` (tests/data/h200/README.md).

    python scripts/gpu_trace_workload.py --phases trace-phases.txt [--device cuda]
        [--phase-seconds 9] [--idle-seconds 6] [--settle-seconds 5]
        [--matmul 8192] [--copy-mib 4096] [--json numbers.json]

Lines written, in order: `idle` (no CUDA context yet), `gemm`, `gemm_end tflops=X` (the loop's
achieved TFLOP/s), `copy`, `copy_end TBps_rw=X` (TB/s counting bytes read and written),
`tiny_kernels`, `tiny_end kernels=N` (kernels launched), `end`. A `<phase>_end` line starts the
settling after that phase (the process holds its CUDA context and runs nothing). On the CPU
(`--device cpu`, the dry run) the same phases run with whatever sizes are given.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, TextIO


def _mark(out: TextIO, phase: str, **numbers: float | int) -> float:
    """Append one phase line stamped with the wall clock; return the stamp."""
    now = time.time()
    extra = "".join(f" {k}={v}" for k, v in numbers.items())
    out.write(f"{now:.2f} {phase}{extra}\n")
    out.flush()
    return now


def _sig(value: float) -> float:
    """`value` to 4 significant digits (654.2, 4.281, 0.01234)."""
    return float(f"{value:.4g}")


def _sync(torch: Any, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _loop(torch: Any, device: str, seconds: float, body: Any, per_sync: int) -> tuple[int, float]:
    """Run `body` in batches of `per_sync` calls until `seconds` have passed; return the calls
    made and the seconds they took (device-synchronised)."""
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(per_sync):
            body()
        _sync(torch, device)
        calls += per_sync
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls, elapsed


def _gemm(torch: Any, device: str, n: int, seconds: float, out: TextIO) -> float:
    """The matmul phase: achieved TFLOP/s (2 n^3 FLOPs a product)."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    c = torch.empty(n, n, device=device, dtype=dtype)
    torch.matmul(a, b, out=c)  # warm-up: cuBLAS picks its kernel
    _sync(torch, device)
    _mark(out, "gemm")
    calls, secs = _loop(torch, device, seconds, lambda: torch.matmul(a, b, out=c), 10)
    return _sig(2.0 * n**3 * calls / secs / 1e12)


def _copy(torch: Any, device: str, mib: int, seconds: float, out: TextIO) -> float:
    """The device-to-device copy phase: achieved TB/s, bytes read plus bytes written."""
    src = torch.ones(mib * (1 << 20) // 2, device=device, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _sync(torch, device)
    _mark(out, "copy")
    calls, secs = _loop(torch, device, seconds, lambda: dst.copy_(src), 10)
    return _sig(2.0 * src.numel() * src.element_size() * calls / secs / 1e12)


def _tiny(torch: Any, device: str, seconds: float, out: TextIO) -> int:
    """The tiny-kernel storm: one 32-element add per launch; kernels launched."""
    tiny = torch.zeros(32, device=device)
    tiny.add_(1.0)
    _sync(torch, device)
    _mark(out, "tiny_kernels")
    # Syncing every 1,000 launches keeps the launch queue short.
    calls, _ = _loop(torch, device, seconds, lambda: tiny.add_(1.0), 1000)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phases", type=Path, required=True, help="phases file to write")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--phase-seconds", type=float, default=9.0, help="each busy phase")
    parser.add_argument("--idle-seconds", type=float, default=6.0, help="the first idle phase")
    parser.add_argument("--settle-seconds", type=float, default=5.0, help="after each phase")
    parser.add_argument("--matmul", type=int, default=8192, help="n of the n x n x n matmul")
    parser.add_argument("--copy-mib", type=int, default=4096, help="bytes copied per call, MiB")
    parser.add_argument("--json", type=Path, help="also write the achieved numbers here")
    args = parser.parse_args()

    import torch  # noqa: PLC0415 - imported before the idle mark; creates no CUDA context

    device, busy, settle = args.device, args.phase_seconds, args.settle_seconds
    numbers: dict[str, float | int] = {}
    with args.phases.open("w") as out:
        _mark(out, "idle")
        time.sleep(args.idle_seconds)
        numbers["tflops"] = _gemm(torch, device, args.matmul, busy, out)
        _mark(out, "gemm_end", tflops=numbers["tflops"])
        time.sleep(settle)
        numbers["TBps_rw"] = _copy(torch, device, args.copy_mib, busy, out)
        _mark(out, "copy_end", TBps_rw=numbers["TBps_rw"])
        time.sleep(settle)
        numbers["kernels"] = _tiny(torch, device, busy, out)
        _mark(out, "tiny_end", kernels=numbers["kernels"])
        time.sleep(settle)
        _mark(out, "end")
    if args.json is not None:
        args.json.write_text(json.dumps({"device": device, **numbers}, indent=1) + "\n")


if __name__ == "__main__":
    main()
