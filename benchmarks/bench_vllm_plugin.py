"""The vLLM plugin's cost inside vLLM (issue 11): record() per step, its share of a live step,
and tokens/s of the same seeded load with and without the plugin.

1. micro: `Recorder.record()` (what vLLM calls each step) on synthetic stats shaped like vLLM
   0.32's: a decode step of batch 64 (64 running, 64 generated tokens, 64 inter-token gaps,
   iteration details, prefix stats), into a fresh prometheus_client registry, the cost model
   costing the step for the tiny Llama the live test serves. Best of `--repeat` timeit runs
   of this process's CPU time (the machine is shared: wall time counts other jobs' turns),
   µs per step. Target <= 20 µs.
2. live (skipped without the env of scripts/vllm-cpu-env.sh, or with --micro-only): two vLLM
   CPU servers of the tiny model, one with the plugin and one with it filtered out by
   VLLM_PLUGINS, both with vLLM's iteration details (exact step times); after one warm-up
   each, `--runs` interleaved runs of one seeded multi-turn chat load on each; tokens/s =
   completion tokens / wall time; the median of each side, their ratio (target >= 0.98) and
   the noise band (the spread of each side's runs around its median). The mean live step time
   is the plugin server's step_busy_seconds_total / steps; record()'s share of it is (1)
   divided by it (target <= 0.5 %).

Usage: PYTHONPATH=. .venv/bin/python benchmarks/bench_vllm_plugin.py [--runs N] [--micro-only]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path
from types import SimpleNamespace as Stats
from typing import Any

from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gpumetrics.catalog import engine as cat  # noqa: E402
from gpumetrics.integrations.vllm_record import make_recorder  # noqa: E402
from tests.integrations.vllm_live import (  # noqa: E402
    chat_load,
    env_dir,
    env_problem,
    scrape,
    total,
    vllm_server,
)

TINY = {
    "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
    "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
    "head_dim": 64, "vocab_size": 455, "tie_word_embeddings": True,
}  # fmt: skip


def _config() -> Any:
    return Stats(
        model_config=Stats(served_model_name="tiny", dtype="torch.bfloat16",
                           hf_config=Stats(to_dict=lambda: dict(TINY))),
        cache_config=Stats(num_gpu_blocks=4096, block_size=128, cache_dtype="auto"),
        scheduler_config=Stats(max_num_seqs=128, max_num_batched_tokens=2048),
        observability_config=Stats(kv_cache_metrics=False),
    )  # fmt: skip


def _decode_step(batch: int) -> tuple[Any, Any]:
    sched = Stats(
        num_running_reqs=batch, num_waiting_reqs=3, num_skipped_waiting_reqs=0,
        kv_cache_usage=0.4,
        prefix_cache_stats=Stats(requests=0, queries=0, hits=0, preempted_requests=0,
                                 preempted_queries=0, preempted_hits=0),
        kv_cache_eviction_events=[], spec_decoding_stats=None,
        connector_prefix_cache_stats=None,
        iteration_details=Stats(num_ctx_tokens=0, num_generation_tokens=batch,
                                elapsed_ms=20.0, is_dummy=False),
    )  # fmt: skip
    iteration = Stats(
        num_generation_tokens=batch, num_preempted_reqs=0,
        prompt_token_stats=Stats(total=0, cached_tokens=0, computed=0, local_cache_hit=0,
                                 external_kv_transfer=0),
        time_to_first_tokens_iter=[], inter_token_latencies_iter=[0.02] * batch,
        finished_requests=[],
    )  # fmt: skip
    return sched, iteration


def micro(batch: int, repeat: int) -> float:
    """Best µs per record() of a batch-`batch` decode step."""
    registry = CollectorRegistry()
    recorder = make_recorder(_config(), 0, environ={}, registry=registry)
    # A live batch of `batch` requests with 300-token contexts for the attention estimate.
    recorder.reader.live_requests, recorder.reader.live_context = batch, 300 * batch
    sched, iteration = _decode_step(batch)
    timer = timeit.Timer(lambda: recorder.record(sched, iteration), timer=time.process_time)
    number, _ = timer.autorange()
    best = min(timer.repeat(repeat=repeat, number=number)) / number
    labels = {"engine": "vllm", "model": "tiny", "dp_rank": "0"}
    assert registry.get_sample_value(cat.HOOK_ERRORS.name, labels) == 0  # measured real work
    assert registry.get_sample_value(cat.FLOPS.name, labels)
    return best * 1e6


def _cpu_seconds(group: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of process group
    `group` (a server, its engine core and workers)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _spread(values: list[float]) -> float:
    mid = statistics.median(values)
    return max(abs(v - mid) for v in values) / mid


def live(runs: int) -> dict[str, float]:
    folder = env_dir()
    problem = env_problem(folder)
    if problem is not None:
        raise SystemExit(f"live part skipped: {problem}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    load = {"seed": 21, "conversations": 8, "turns": 4, "concurrency": 8, "max_tokens": 128}
    with (
        vllm_server(folder, tmp / "with.log") as with_plugin,
        vllm_server(folder, tmp / "without.log", extra_env={"VLLM_PLUGINS": "none"}) as without,
    ):
        assert total(scrape(f"{without.url}/metrics"), cat.STEPS.name) == 0  # really off
        for server in (with_plugin, without):  # warm-up: compile paths, fill prefix caches
            chat_load(server.url, **load)
        on: list[float] = []
        off: list[float] = []
        cpu_on: list[float] = []
        cpu_off: list[float] = []
        for i in range(runs):
            order = (with_plugin, without) if i % 2 == 0 else (without, with_plugin)
            for server in order:
                cpu = _cpu_seconds(server.process.pid)
                result = chat_load(server.url, **load)
                tokens = sum(r.completion_tokens for r in result.replies)
                per_k = 1000.0 * (_cpu_seconds(server.process.pid) - cpu) / tokens
                (on if server is with_plugin else off).append(result.tokens_per_s)
                (cpu_on if server is with_plugin else cpu_off).append(per_k)
                side = "with" if server is with_plugin else "without"
                print(f"  run {i + 1} {side:7s} plugin: {result.tokens_per_s:7.1f} tokens/s, "
                      f"{per_k:.3f} CPU s per 1k tokens", flush=True)  # fmt: skip
        page = scrape(f"{with_plugin.url}/metrics")
    steps = total(page, cat.STEPS.name)
    return {
        "on_median": statistics.median(on),
        "off_median": statistics.median(off),
        "ratio": statistics.median(on) / statistics.median(off),
        "on_spread": _spread(on),
        "off_spread": _spread(off),
        "step_ms": 1000.0 * total(page, cat.STEP_BUSY.name) / steps,
        "steps": steps,
        "cpu_on": statistics.median(cpu_on),
        "cpu_off": statistics.median(cpu_off),
        "cpu_on_spread": _spread(cpu_on),
        "cpu_off_spread": _spread(cpu_off),
        "pair_ratios": statistics.median(a / b for a, b in zip(on, off, strict=True)),
        "hook_errors": total(page, cat.HOOK_ERRORS.name),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--micro-only", action="store_true")
    args = parser.parse_args()
    now = datetime.datetime.now(datetime.UTC)
    cpu = platform.processor() or platform.machine()
    print(f"# {now:%Y-%m-%d %H:%M} UTC, {cpu}, Python {platform.python_version()}")
    us = micro(64, args.repeat)
    print(f"record() at batch 64: {us:.2f} µs/step (target <= 20)")
    us8 = micro(8, args.repeat)
    print(f"record() at batch 8 (the live load's): {us8:.2f} µs/step")
    if args.micro_only:
        return
    r = live(args.runs)
    print(f"live mean step: {r['step_ms']:.2f} ms over {r['steps']:.0f} steps; record() share "
          f"{100 * us8 / 1000 / r['step_ms']:.3f} % at the live batch, "
          f"{100 * us / 1000 / r['step_ms']:.3f} % at batch 64 (target <= 0.5 %)")  # fmt: skip
    print(f"tokens/s with plugin {r['on_median']:.1f} (spread ±{100 * r['on_spread']:.1f} %), "
          f"without {r['off_median']:.1f} (±{100 * r['off_spread']:.1f} %); ratio "
          f"{r['ratio']:.3f} (target >= 0.98; median of run pairs {r['pair_ratios']:.3f}), "
          f"{args.runs} interleaved runs each; "
          f"hook errors {r['hook_errors']:.0f}")  # fmt: skip
    on, on_spread = r["cpu_on"], 100 * r["cpu_on_spread"]
    print(f"server CPU per 1k tokens with plugin {on:.3f} s (±{on_spread:.1f} %), "
          f"without {r['cpu_off']:.3f} s (±{100 * r['cpu_off_spread']:.1f} %); "
          f"ratio {r['cpu_off'] / r['cpu_on']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
