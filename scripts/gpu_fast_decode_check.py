"""GPU self-test of the worker's fast decode path (issue 17): correctness, then speed.

    python scripts/gpu_fast_decode_check.py --out fast-decode.json          # on a CUDA GPU
    python scripts/gpu_fast_decode_check.py --dry-run --out /tmp/dry.json   # CPU, tiny model

1. **Correctness** on the 1B preset (`--model`), each decode step teacher-forced against the
   reference path (sdpa) on the same cache state:
   * bf16, CUDA graphs: against fp32 logits of the same weights upcast (a fresh prefill of
     each sequence), the fast path's error at most BF16_ERROR_RATIO x the reference path's
     + BF16_ERROR_FLOOR, max and mean over all logits (fast_decode.py says why); the greedy
     agreement of each with fp32 and with each other is reported (bf16 ties flip a few);
   * fp32, CUDA graphs: greedy tokens of a short multi-request run identical to the
     reference engine's (fast_decode=off) — no rounding to hide behind.
2. **Speed** (bf16): decode steps at batch 1/16/64/256 × context 1024 (then 4096 while the
   time budget lasts) on synthetic sequences (KV content is irrelevant to speed), timed with
   CUDA events: the whole `FastDecoder.decode` call (host metadata + copies + graph replay +
   the tokens' copy back) and the graph replay alone; tokens/s = batch / step; MBU = the cost
   model's bytes of the step (what the engine reports to its hooks) / step / 4.8e12 (H200
   HBM3e peak). The reference path is timed at batch 1 and 64, the first context, for the ratio;
   `--hf-tokens-per-s` (default: HF eager at batch 64 on the same H200,
   shared/h200-reference/hf-generate.json) gives the ratio to Hugging Face.
3. **Attention variants** at batch 64 × 1024: the Triton kernel alone per (tile, warps,
   splits), in GB/s of KV read, to pick the defaults (on CPU only under TRITON_INTERPRET=1).

Prints a table; writes everything as JSON to --out. Exit 1 if a correctness check fails.
`--dry-run` runs the same code on CPU with the tiny preset (no graphs, no events).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gpumetrics.costmodel import PRESETS, ModelSpec, RequestWork, step_cost
from gpumetrics.worker import Engine, EngineConfig, triton_ops
from gpumetrics.worker.attention import PagedKV
from gpumetrics.worker.decode_oracle import prefill_logits, reference_decode_logits
from gpumetrics.worker.fast_decode import BF16_ERROR_FLOOR, BF16_ERROR_RATIO, FastDecoder
from gpumetrics.worker.llama import build_model
from gpumetrics.worker.scheduler import ScheduledSeq, SchedulerOutput, Sequence

PEAK_BANDWIDTH = 4.8e12
"""H200 HBM3e peak, bytes/s (the MBU denominator)."""
HF_EAGER_TOKENS_PER_S = 1220.0
"""HF `generate`, eager, batch 64, 1B shape, the same H200 (shared/h200-reference)."""
BLOCK = 16
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


class Clock:
    """Elapsed seconds of a callable: CUDA events on CUDA, perf_counter on CPU."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda

    def time(self, fn: Callable[[], object], reps: int, warmup: int = 3) -> list[float]:
        for _ in range(warmup):
            fn()
        out = []
        for _ in range(reps):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                out.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
        return out


def _prompts(spec: ModelSpec, seed: int, lengths: list[int]) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(1, spec.vocab) for _ in range(n)] for n in lengths]


def check_bf16_logits(spec: ModelSpec, device: str, dtype: str) -> dict[str, Any]:
    """Teacher-forced: before each fast step the reference forward runs on the same state;
    both are measured against fp32 logits of the same weights upcast (a fresh prefill)."""
    engine = Engine(
        EngineConfig(
            spec,
            device=device,
            kv_blocks=256,
            block_size=BLOCK,
            max_batch=8,
            max_batch_tokens=1024,
            dtype=dtype,
            fast_decode="on",
        )
    )
    fast = engine.runner.fast
    assert fast is not None
    truth_model = build_model(
        spec, seed=0, device=engine.runner.device, dtype=DTYPES[dtype]
    ).float()
    decode = fast.decode
    diffs: list[torch.Tensor] = []
    fast_err: list[torch.Tensor] = []
    ref_err: list[torch.Tensor] = []
    agree = {"fast": 0, "reference": 0, "fast_vs_reference": 0, "rows": 0}

    def checked(out: SchedulerOutput) -> list[int]:
        ref = reference_decode_logits(
            engine.runner.model, engine.runner.kv, out, engine.runner.device
        )
        tokens = decode(out)
        assert fast.last_logits is not None
        got = fast.last_logits.float()
        seqs = [e.seq.tokens[: e.context] for e in out.entries]
        truth = prefill_logits(truth_model, seqs, engine.runner.device, BLOCK)
        diffs.append((got - ref).abs().flatten())
        fast_err.append((got - truth).abs().flatten())
        ref_err.append((ref - truth).abs().flatten())
        best = truth.argmax(-1)
        agree["fast"] += int((got.argmax(-1) == best).sum())
        agree["reference"] += int((ref.argmax(-1) == best).sum())
        agree["fast_vs_reference"] += int((got.argmax(-1) == ref.argmax(-1)).sum())
        agree["rows"] += len(tokens)
        return tokens

    fast.decode = checked  # type: ignore[method-assign]
    for prompt in _prompts(spec, 1, [37, 120, 300, 64, 513, 9]):
        engine.add_request(prompt, 10)
    engine.run()
    d, fe, re_ = torch.cat(diffs), torch.cat(fast_err), torch.cat(ref_err)
    bound_max = BF16_ERROR_RATIO * re_.max().item() + BF16_ERROR_FLOOR
    bound_mean = BF16_ERROR_RATIO * re_.mean().item() + BF16_ERROR_FLOOR
    ok = fe.max().item() <= bound_max and fe.mean().item() <= bound_mean and fast.steps > 0
    return {
        "dtype": dtype, "graphs": bool(fast._graphs), "steps": fast.steps, **agree,
        "fast_vs_reference_max": d.max().item(), "fast_vs_reference_mean": d.mean().item(),
        "fast_error_max": fe.max().item(), "fast_error_mean": fe.mean().item(),
        "reference_error_max": re_.max().item(), "reference_error_mean": re_.mean().item(),
        "ratio": BF16_ERROR_RATIO, "floor": BF16_ERROR_FLOOR, "ok": ok,
    }  # fmt: skip


def check_greedy_run(spec: ModelSpec, device: str) -> dict[str, Any]:
    """fp32: the fast engine's outputs equal the reference engine's, token for token."""
    outputs, paths = [], []
    for mode in ("off", "on"):
        engine = Engine(
            EngineConfig(
                spec,
                device=device,
                kv_blocks=256,
                block_size=BLOCK,
                max_batch=4,
                max_batch_tokens=1024,
                dtype="fp32",
                fast_decode=mode,
            )
        )
        for prompt in _prompts(spec, 2, [50, 200, 17, 90, 33]):
            engine.add_request(prompt, 12)
        done = engine.run()
        outputs.append([f.tokens for f in sorted(done, key=lambda f: f.request_id)])
        paths.append(engine.summary().attention_path)
        del engine
    same = outputs[0] == outputs[1]
    return {"dtype": "fp32", "paths": paths, "requests": len(outputs[0]), "ok": same}


def decode_batch(spec: ModelSpec, batch: int, context: int, first_block: int) -> SchedulerOutput:
    """`batch` sequences, each decoding its token at position context − 1."""
    rng = random.Random(batch * 7919 + context)
    blocks = -(-context // BLOCK)
    entries = []
    for i in range(batch):
        seq = Sequence(i, [rng.randrange(1, spec.vocab) for _ in range(context - 1)], 8, 0.0)
        seq.tokens.append(rng.randrange(1, spec.vocab))
        seq.block_table = list(range(first_block + i * blocks, first_block + (i + 1) * blocks))
        entries.append(ScheduledSeq(seq, context - 1, 1, decode=True, samples=True))
    return SchedulerOutput(tuple(entries), (), (), (), 0, 0)


def time_cells(args: argparse.Namespace, spec: ModelSpec, started: float) -> dict[str, Any]:
    cuda = args.device.startswith("cuda")
    dev, clock = torch.device(args.device), Clock(cuda)
    dtype = torch.bfloat16 if cuda else torch.float32
    name = "bf16" if cuda else "fp32"
    batches, contexts = args.batches, args.contexts
    pool = max(batches) * -(-(max(contexts) + 1) // BLOCK)
    model = build_model(spec, seed=0, device=dev, dtype=dtype)
    kv = PagedKV.allocate(
        spec.layers, pool, BLOCK, spec.kv_heads, spec.head_dim, dtype=dtype, device=dev
    )
    width = -(-spec.max_context // BLOCK)
    t0 = time.perf_counter()
    fast = FastDecoder(model, kv, spec, max(batches), BLOCK, min(width, pool), dev)
    cells: list[dict[str, Any]] = []
    out: dict[str, Any] = {"capture_s": time.perf_counter() - t0, "cells": cells}
    for context in contexts:
        for batch in batches:
            if time.perf_counter() - started > args.budget_s:
                cells.append({"batch": batch, "context": context, "skipped": "time budget"})
                continue
            step = decode_batch(spec, batch, context, 0)
            cost = step_cost(
                spec, [RequestWork(1, context, True)] * batch, dtype=name, kv_dtype=name
            )
            moved = cost.read_bytes + cost.kv_write_bytes
            step_s = statistics.median(clock.time(lambda s=step: fast.decode(s), args.steps))
            n = next(s for s in fast.sizes if s >= batch)
            replay_s = statistics.median(clock.time(lambda n=n: fast.replay(n), args.steps))
            cells.append(
                {
                    "batch": batch,
                    "context": context,
                    "step_ms": step_s * 1e3,
                    "replay_ms": replay_s * 1e3,
                    "tokens_per_s": batch / step_s,
                    "mbu": moved / step_s / PEAK_BANDWIDTH,
                    "roofline_ms": moved / PEAK_BANDWIDTH * 1e3,
                    "bytes": moved,
                }
            )
    reference = []
    context = contexts[0]
    for batch in sorted({batches[0], 64 if 64 in batches else batches[-1]}):
        step = decode_batch(spec, batch, context, 0)

        def ref(step: SchedulerOutput = step) -> list[int]:
            tokens: list[int] = reference_decode_logits(model, kv, step, dev).argmax(-1).tolist()
            return tokens

        ref_s = statistics.median(clock.time(ref, max(3, args.steps // 5), warmup=1))
        reference.append(
            {
                "batch": batch,
                "context": context,
                "step_ms": ref_s * 1e3,
                "tokens_per_s": batch / ref_s,
            }
        )
    out["reference"] = reference
    variants: list[dict[str, Any]] = []
    batch = 64 if 64 in batches else batches[-1]
    if time.perf_counter() - started > args.budget_s:
        out["attention_variants_skipped"] = "time budget"
    elif triton_ops.AVAILABLE and (cuda or os.environ.get("TRITON_INTERPRET") == "1"):
        variants = attention_variants(fast, kv, clock, batch, contexts[0])
    out["attention_variants"] = variants
    return out


def attention_variants(
    fast: FastDecoder, kv: PagedKV, clock: Clock, batch: int, context: int
) -> list[dict[str, Any]]:
    """The Triton attention kernel alone at batch × context per (tile tokens, warps, splits),
    best of 20; the first row is the default configuration."""
    from gpumetrics.worker.triton_ops import BLOCK_N, TritonDecodeOps  # noqa: PLC0415

    spec = fast.spec
    fast.decode(decode_batch(spec, batch, context, 0))  # the buffers now hold that batch
    k, v = kv.k[0], kv.v[0]
    q = torch.randn(batch, spec.heads, spec.head_dim, dtype=k.dtype, device=k.device)
    table, ctx = fast._table[:, :batch].t(), fast._meta[3, :batch]
    kv_bytes = batch * context * spec.kv_heads * spec.head_dim * 2 * k.element_size()
    default = fast._splits[next(s for s in fast.sizes if s >= batch)]
    configs = [(BLOCK_N, 4, default), (BLOCK_N, 4, 1), (128, 4, default), (64, 8, default),
               (128, 8, default), (32, 4, default)]  # fmt: skip
    rows = []
    for block_n, warps, splits in dict.fromkeys(configs):
        ops = TritonDecodeOps(block_n=block_n, attention_warps=warps)
        secs = clock.time(
            lambda o=ops, s=splits: o.attention(q, k, v, table, ctx, 0.125, s), 20, warmup=2
        )
        best = min(secs)
        rows.append({"block_n": block_n, "warps": warps, "splits": splits, "us": best * 1e6,
                     "gb_per_s": kv_bytes / best / 1e9})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON results here")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model, small cells")
    parser.add_argument("--model", default=None, help="preset (default: 1b; dry run: tiny)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per cell")
    parser.add_argument("--budget-s", type=float, default=150.0, help="skip cells after this")
    parser.add_argument("--hf-tokens-per-s", type=float, default=HF_EAGER_TOKENS_PER_S)
    args = parser.parse_args(argv)
    if args.dry_run:
        args.device, args.batches, args.contexts = "cpu", [1, 3, 4], [24, 40]
        args.model, args.steps = args.model or "tiny", args.steps or 2
    else:
        if not torch.cuda.is_available():
            print("no CUDA device: use --dry-run on CPU", file=sys.stderr)
            return 2
        args.device, args.batches, args.contexts = "cuda", [1, 16, 64, 256], [1024, 4096]
        args.model, args.steps = args.model or "1b", args.steps or 30
    if args.model not in PRESETS:
        print(f"unknown model preset {args.model!r}", file=sys.stderr)
        return 2
    spec, started = PRESETS[args.model], time.perf_counter()
    cuda = args.device == "cuda"
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "model": spec.name,
        "triton": _triton_version(),
    }
    result["bf16_logits"] = check_bf16_logits(spec, args.device, "bf16" if cuda else "fp32")
    result["fp32_greedy"] = check_greedy_run(spec, args.device)
    gc.collect()  # the checks' engines and fp32 models (their wrapped decode holds a cycle)
    if cuda:
        torch.cuda.empty_cache()
    result.update(time_cells(args, spec, started))
    result["elapsed_s"] = time.perf_counter() - started
    ok = result["bf16_logits"]["ok"] and result["fp32_greedy"]["ok"]
    result["ok"] = ok
    args.out.write_text(json.dumps(result, indent=2))
    _print(result, args.hf_tokens_per_s)
    return 0 if ok else 1


def _triton_version() -> str | None:
    try:
        import triton  # noqa: PLC0415

        return str(triton.__version__)
    except ImportError:
        return None


def _print(r: dict[str, Any], hf: float) -> None:
    c, g = r["bf16_logits"], r["fp32_greedy"]
    print(f"{r['device']} · torch {r['torch']} · triton {r['triton']} · {r['model']}")
    print(
        f"logits ({c['dtype']}, graphs={c['graphs']}, {c['rows']} rows): error vs fp32 "
        f"max/mean fast {c['fast_error_max']:.4f}/{c['fast_error_mean']:.5f}, reference "
        f"{c['reference_error_max']:.4f}/{c['reference_error_mean']:.5f}; |fast - reference| "
        f"{c['fast_vs_reference_max']:.4f}/{c['fast_vs_reference_mean']:.5f}; greedy = fp32: "
        f"fast {c['fast']}, reference {c['reference']}; fast = reference {c['fast_vs_reference']}"
        f" -> {'OK' if c['ok'] else 'FAIL'}"
    )
    print(f"greedy run (fp32, {g['paths']}): {'OK' if g['ok'] else 'FAIL'}")
    print(f"graph capture {r['capture_s']:.1f} s")
    print(
        f"{'batch':>5} {'ctx':>5} {'step ms':>8} {'replay ms':>9} {'tok/s':>9} {'MBU':>6} "
        f"{'roof ms':>7}"
    )
    for cell in r["cells"]:
        if "skipped" in cell:
            print(f"{cell['batch']:>5} {cell['context']:>5}  skipped: {cell['skipped']}")
            continue
        print(
            f"{cell['batch']:>5} {cell['context']:>5} {cell['step_ms']:>8.3f} "
            f"{cell['replay_ms']:>9.3f} {cell['tokens_per_s']:>9,.0f} {cell['mbu']:>6.1%} "
            f"{cell['roofline_ms']:>7.3f}"
        )
    fast64 = next((c for c in r["cells"] if c.get("batch") == 64 and c["context"] == 1024), None)
    for ref in r["reference"]:
        line = f"reference path batch {ref['batch']} x {ref['context']}: {ref['step_ms']:.2f} ms"
        fast = next(
            (
                c
                for c in r["cells"]
                if c.get("batch") == ref["batch"] and c["context"] == ref["context"]
            ),
            None,
        )
        if fast is not None and "step_ms" in fast:
            line += f" -> fast path {ref['step_ms'] / fast['step_ms']:.1f}x"
        print(line)
    if fast64 is not None and "tokens_per_s" in fast64:
        print(f"batch 64 x 1024: {fast64['tokens_per_s'] / hf:.1f}x HF eager ({hf:,.0f} tok/s)")
    for v in r["attention_variants"]:
        print(
            f"attention tile {v['block_n']:>3} warps {v['warps']} splits {v['splits']:>2}: "
            f"{v['us']:7.1f} us/layer {v['gb_per_s']:7.0f} GB/s"
        )
    print(f"elapsed {r['elapsed_s']:.1f} s -> {'OK' if r['ok'] else 'FAIL'}")


if __name__ == "__main__":
    sys.exit(main())
