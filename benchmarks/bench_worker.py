"""The reference worker on CPU, side by side with Hugging Face `generate`, and the hooks' cost.

One command, one process (DESIGN.md §7): the same tiny config, the same weights (the worker's
state dict loaded into `transformers.LlamaForCausalLM`), the same batch of seeded random
prompts, greedy decoding of a fixed number of tokens. Each contender runs `--repeat` times;
the best (fastest) run is reported as generated tokens per second, with the ratio to HF.

Rows:
  worker/<path>   Engine over the paged cache: one prefill step for the whole batch (the
                  token budget holds it), then batched decode; attention path eager or sdpa
  hf-generate     LlamaForCausalLM.generate(do_sample=False, min/max_new_tokens=N), its
                  default dynamic KV cache and sdpa attention
Then the hooks' overhead inside the worker loop: seconds in EngineMetrics calls (and, apart,
in the cost model computing each step's FLOPs/bytes) as a share of the loop's time, for the
batch run and for a `chat` scenario run with evictions.

Usage: .venv/bin/python benchmarks/bench_worker.py [--batch 16] [--prompt 128] [--new 128]
       [--repeat 5] [--chat-requests 60] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from importlib.metadata import version

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gpumetrics.costmodel import PRESETS
from gpumetrics.worker import (
    SCENARIOS,
    ByteTokenizer,
    ChatLoad,
    Engine,
    EngineConfig,
    hf_config_kwargs,
    run_load,
)
from gpumetrics.worker.tokenizer import PAD

SPEC = PRESETS["tiny"]


@dataclass(frozen=True, slots=True)
class Row:
    """One contender's best run."""

    impl: str
    seconds: float
    tokens_per_second: float
    ratio_to_hf: float | None


def _engine(batch: int, prompt: int, new: int, attention: str) -> Engine:
    blocks = batch * -(-(prompt + new) // 16) + 4
    config = EngineConfig(
        SPEC, kv_blocks=blocks, max_batch=batch, max_batch_tokens=batch * prompt,
        attention=attention,
    )  # fmt: skip
    return Engine(config)


def _run_worker(prompts: list[list[int]], new: int, attention: str) -> tuple[float, Engine]:
    engine = _engine(len(prompts), len(prompts[0]), new, attention)
    for p in prompts:
        engine.add_request(p, new)
    t0 = time.perf_counter()
    finished = engine.run()
    seconds = time.perf_counter() - t0
    assert sum(f.output_tokens for f in finished) == len(prompts) * new
    return seconds, engine


def _run_hf(model: LlamaForCausalLM, ids: torch.Tensor, new: int) -> float:
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=PAD,
        )
    seconds = time.perf_counter() - t0
    assert out.shape == (ids.shape[0], ids.shape[1] + new)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chat-requests", type=int, default=60, help="turns of the chat run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 256, (args.batch, args.prompt), generator=gen)
    prompts = ids.tolist()
    generated = args.batch * args.new

    reference = _engine(1, 1, 1, "eager").runner.model  # the weights every contender uses (seed 0)
    hf = LlamaForCausalLM(LlamaConfig(**hf_config_kwargs(SPEC))).eval()
    hf.load_state_dict(reference.state_dict())

    best: dict[str, float] = {}
    engines: dict[str, Engine] = {}
    for _ in range(args.repeat):
        for path in ("eager", "sdpa"):
            seconds, engine = _run_worker(prompts, args.new, path)
            if seconds < best.get(f"worker/{path}", float("inf")):
                best[f"worker/{path}"], engines[path] = seconds, engine
        best["hf-generate"] = min(best.get("hf-generate", float("inf")), _run_hf(hf, ids, args.new))
    hf_tps = generated / best["hf-generate"]
    rows = [
        Row(impl, s, generated / s, None if impl == "hf-generate" else (generated / s) / hf_tps)
        for impl, s in best.items()
    ]

    overhead = {}
    for path, engine in engines.items():
        st = engine.stats
        overhead[f"batch/{path}"] = (st.hook_seconds, st.cost_model_seconds, st.loop_seconds)
    # The chat run twice: the live ghost cache at the worker's default sample rate (1.0) and
    # off, so its share of the hooks' time is measured, not guessed.
    summaries = {}
    for label, rate in (("chat", 1.0), ("chat, no ghost", None)):
        chat = Engine(
            EngineConfig(
                SPEC, kv_blocks=48, max_batch=16, max_batch_tokens=512,
                kv_predict_sample_rate=rate,
            )
        )  # fmt: skip
        chat_load = ChatLoad(SCENARIOS["chat"], ByteTokenizer(SPEC.vocab), max_context=2048)
        summaries[label] = run_load(chat, chat_load, requests=args.chat_requests)
        st = chat.stats
        overhead[f"{label}/" + chat.attention_path] = (
            st.hook_seconds,
            st.cost_model_seconds,
            st.loop_seconds,
        )
    chat_summary = summaries["chat"]

    machine = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": version("transformers"),
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.json:
        print(
            json.dumps(
                {
                    "machine": machine,
                    "config": vars(args),
                    "rows": [asdict(r) for r in rows],
                    "hooks_overhead": {
                        k: {"hook_s": h, "cost_model_s": c, "loop_s": loop}
                        for k, (h, c, loop) in overhead.items()
                    },
                    "chat": chat_summary.as_dict(),
                },
                indent=2,
            )
        )
        return
    print(f"# {machine}")
    print(
        f"# tiny preset, batch {args.batch}, prompt {args.prompt}, {args.new} new tokens, "
        f"greedy; best of {args.repeat}"
    )
    print(f"{'impl':<16} {'seconds':>9} {'tokens/s':>10} {'vs HF':>7}")
    for r in rows:
        ratio = "1.00" if r.ratio_to_hf is None else f"{r.ratio_to_hf:.2f}"
        print(f"{r.impl:<16} {r.seconds:>9.3f} {r.tokens_per_second:>10.0f} {ratio:>7}")
    print()
    print(f"{'hooks overhead':<16} {'hooks':>9} {'cost model':>11} {'loop':>9} {'share':>15}")
    for name, (h, c, loop) in overhead.items():
        share = f"{h / loop:.2%} (+{c / loop:.2%})"
        print(f"{name:<16} {h * 1e3:>7.2f}ms {c * 1e3:>9.2f}ms {loop:>8.3f}s {share:>15}")
    print(
        f"\nchat run: {chat_summary.steps} steps, {chat_summary.evicted_blocks} evicted blocks, "
        f"{chat_summary.recomputed_tokens} recomputed tokens, "
        f"hit ratio {chat_summary.prefix_hit_ratio:.2f}"
    )


if __name__ == "__main__":
    main()
