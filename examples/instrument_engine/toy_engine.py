"""A toy inference-engine loop instrumented with gpumetrics.hooks (no torch, no GPU needed).

Requests arrive and queue, are prefilled one at a time (after a prefix-cache lookup), decode
one token per step in a batch of up to 8, and finish; the "forward pass" is a short sleep.
FLOPs and bytes are computed by the hooks from the cost model of the chosen preset.
Run: .venv/bin/python examples/instrument_engine/toy_engine.py   (see README.md)
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass, field

from gpumetrics.costmodel import RequestWork, find_model
from gpumetrics.hooks import EngineMetrics

BLOCK, CAPACITY = 16, 4096  # tokens per KV block, KV blocks


@dataclass
class Request:
    prompt: int
    cached: int
    target: int
    arrival: float
    gaps: list[float] = field(default_factory=list)
    generated: int = 0
    first: float = 0.0
    last: float = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9400, help="0 picks a free port")
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to run")
    parser.add_argument("--model", default="llama-3-8b", help="cost-model preset")
    args = parser.parse_args()
    metrics = EngineMetrics(
        "toy-0",
        args.model,
        model_spec=find_model(args.model),
        max_batch_sequences=8,
        max_batch_tokens=4096,
        kv_block_size=BLOCK,
        kv_capacity_blocks=CAPACITY,
    )
    endpoint = metrics.serve(port=args.port)
    print(f"serving {endpoint.url} for {args.seconds:g} s", flush=True)
    rng, waiting, running, now = random.Random(0), list[Request](), list[Request](), metrics.clock
    deadline = now() + args.seconds
    while now() < deadline:
        t0 = now()
        if rng.random() < 0.12:  # a request arrives; half of them share a cached prefix
            prompt = rng.randrange(64, 1024)
            waiting.append(Request(prompt, rng.choice((0, prompt // 2)), rng.randrange(4, 64), t0))
        if waiting and len(running) < 8:  # admit one request: a prefill step
            req = waiting.pop(0)
            prompt = req.prompt
            metrics.record_prefix_lookup(queried_tokens=prompt, hit_tokens=req.cached)
            time.sleep(0.004)
            metrics.record_step(
                phase="prefill",
                sequences=1,
                prefill_tokens=prompt - req.cached,
                decode_tokens=0,
                duration_s=now() - t0,
                work=[RequestWork.prefill(prompt, req.cached)],
            )
            req.first = req.last = now()
            req.generated = 1
            running.append(req)
        elif running:  # one decode step over the whole batch
            work = [RequestWork.decode(r.prompt + r.generated + 1) for r in running]
            time.sleep(0.002)
            metrics.record_step(
                phase="decode",
                sequences=len(running),
                prefill_tokens=0,
                decode_tokens=len(running),
                duration_s=now() - t0,
                work=work,
            )
            for r in running:
                r.gaps.append(now() - r.last)
                r.last, r.generated = now(), r.generated + 1
        for r in [r for r in running if r.generated >= r.target]:
            running.remove(r)
            metrics.record_request_finished(
                ttft_s=r.first - r.arrival,
                inter_token_s=r.gaps,
                e2e_s=r.last - r.arrival,
                prompt_tokens=r.prompt,
                cached_tokens=r.cached,
                output_tokens=r.generated,
            )
        used = sum(-(-(r.prompt + r.generated) // BLOCK) for r in running)
        metrics.record_kv(used_blocks=used, total_blocks=CAPACITY, evictable_blocks=CAPACITY // 8)
        metrics.set_queue(waiting=len(waiting), running=len(running))
    endpoint.close()
    print(f"done; hook errors: {metrics.hook_errors}", flush=True)


if __name__ == "__main__":
    main()
