"""Hugging Face `generate` on the reference worker's model shape: the baseline that the worker's
tokens/s is compared with (issue 17: >= 10x HF eager at batch 64).

    python scripts/hf_generate_check.py --out hf-generate.json [--device cuda] [--model 1b]
        [--batch 1,64] [--prompt 1024] [--new 32] [--hbm-bandwidth 4.8e12]

`transformers.LlamaForCausalLM` built from `gpumetrics.worker.llama.hf_config_kwargs` (the same
architecture the worker runs) with random weights (bf16 on CUDA, fp32 on the CPU: the speed does
not depend on their values), eager PyTorch (no torch.compile), its default dynamic KV cache.
Per batch size: one warm-up `generate`, then a timed `generate` of `--new` tokens after a
prompt of `--prompt` random tokens, with a logits processor noting the time after each forward
pass (the device synchronised there; HF's own stopping check synchronises each step anyway).
Written per batch, as `eager_b<B>`:

  step_ms, tok_s, mbu       the whole call over --new steps (prefill included), as recorded in
                            shared/h200-reference/hf-generate.json
  prefill_ms                from the call's start to the first token's logits
  decode_step_ms, decode_tok_s, decode_mbu
                            decode alone: the mean gap between later forward passes

MBU: the cost model's bytes of a decode step at the mean context (prompt + new/2) over the step
time and the GPU's HBM bandwidth (the spec table's, or --hbm-bandwidth; none on the CPU).
Exit 3 when transformers cannot be imported (the JSON says why).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def _timed_generate(
    torch: Any, transformers: Any, model: Any, ids: Any, new: int, device: str
) -> tuple[float, list[float]]:
    """One greedy `generate` of exactly `new` tokens: its seconds, and the time after each
    forward pass (taken where the logits are processed, the device synchronised), relative to
    the call's start: the first is the prefill, each later gap one decode step."""
    marks: list[float] = []

    class _Clock(transformers.LogitsProcessor):  # type: ignore[misc]
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            if device == "cuda":
                torch.cuda.synchronize()
            marks.append(time.perf_counter())
            return scores

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=0,
            logits_processor=transformers.LogitsProcessorList([_Clock()]),
        )
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if tuple(out.shape) != (ids.shape[0], ids.shape[1] + new) or len(marks) != new:
        raise RuntimeError(f"generate returned shape {tuple(out.shape)}, {len(marks)} steps")
    return seconds, [m - start for m in marks]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--model", default="1b", help="a cost-model preset (1b, tiny, ...)")
    parser.add_argument("--batch", default="1,64", help="batch sizes, comma-separated")
    parser.add_argument("--prompt", type=int, default=1024)
    parser.add_argument("--new", type=int, default=32)
    parser.add_argument("--hbm-bandwidth", type=float, help="bytes/s [default: spec table]")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.new < 2:
        parser.error("--new must be >= 2 (decode steps are the gaps after the first token)")
    batches = [int(b) for b in args.batch.split(",")]

    try:
        import transformers  # noqa: PLC0415
    except ImportError as exc:
        args.out.write_text(json.dumps({"skipped": f"transformers not importable: {exc}"}) + "\n")
        print(f"skipped: transformers not importable: {exc}", file=sys.stderr)
        return 3
    import torch  # noqa: PLC0415

    from gpumetrics.costmodel import decode_batch, find_model  # noqa: PLC0415
    from gpumetrics.hardware import match_nvml_name  # noqa: PLC0415
    from gpumetrics.worker.llama import hf_config_kwargs  # noqa: PLC0415

    spec = find_model(args.model)
    device = args.device
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    cost_dtype = "bf16" if device == "cuda" else "fp32"
    torch.manual_seed(args.seed)
    config = transformers.LlamaConfig(**hf_config_kwargs(spec))
    with torch.device(device):  # random init on the device itself
        model: Any = transformers.LlamaForCausalLM(config)
    model = model.to(dtype).eval()
    params = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    bandwidth = args.hbm_bandwidth
    if bandwidth is None and device == "cuda":
        gpu = match_nvml_name(name)
        bandwidth = gpu.hbm_bandwidth if gpu is not None else None

    result: dict[str, Any] = {
        "model": spec.name,
        "params": params,
        "device": name,
        "dtype": str(dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "prompt": args.prompt,
        "new_tokens": args.new,
        "hbm_bandwidth": bandwidth,
    }
    gen = torch.Generator().manual_seed(args.seed)
    for batch in batches:
        ids = torch.randint(0, spec.vocab, (batch, args.prompt), generator=gen).to(device)
        _timed_generate(torch, transformers, model, ids, 2, device)  # warm-up
        full, marks = _timed_generate(torch, transformers, model, ids, args.new, device)
        prefill, decode = marks[0], (marks[-1] - marks[0]) / (args.new - 1)
        cost = decode_batch(
            spec, batch, args.prompt + args.new // 2, dtype=cost_dtype, kv_dtype=cost_dtype
        )
        step_bytes = cost.bytes
        step = full / args.new
        result[f"eager_b{batch}"] = {
            "batch": batch,
            "prompt": args.prompt,
            "step_ms": step * 1e3,
            "tok_s": batch / step,
            "mbu": step_bytes / step / bandwidth if bandwidth else None,
            "prefill_ms": prefill * 1e3,
            "decode_step_ms": decode * 1e3,
            "decode_tok_s": batch / decode,
            "decode_mbu": step_bytes / decode / bandwidth if bandwidth else None,
        }
        print(json.dumps(result[f"eager_b{batch}"]), flush=True)
        del ids
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
