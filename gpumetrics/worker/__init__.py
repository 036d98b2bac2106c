"""The reference inference worker: a nano-vllm-sized engine that exercises every engine metric.

A Llama-style decoder with seeded random weights (`llama`), a byte-level tokenizer
(`tokenizer`), a paged KV cache with prefix caching and LRU eviction (`block_manager`), attention
over it (`attention`), continuous batching with preemption by recompute (`scheduler`), the
instrumented loop (`engine`) and a multi-turn chat load (`loadgen`). The only package of
gpumetrics that imports torch (`pip install 'gpumetrics[worker]'`).

    from gpumetrics.costmodel import PRESETS
    from gpumetrics.worker import ChatLoad, Engine, EngineConfig, SCENARIOS, ByteTokenizer, run_load

    engine = Engine(EngineConfig(PRESETS["tiny"], kv_blocks=64))
    load = ChatLoad(SCENARIOS["chat"], ByteTokenizer(320), max_context=64 * 16)
    print(run_load(engine, load, requests=20).as_dict())

The command-line equivalent: `gpumetrics worker --model tiny --kv-blocks 64 --requests 20`.
"""

from .attention import ATTENTION_PATHS
from .block_manager import BlockManager, PrefixMatch
from .engine import Engine, EngineConfig
from .llama import CausalLM, build_model, hf_config_kwargs
from .loadgen import SCENARIOS, ChatLoad, ChatScenario, TurnRequest, run_load
from .observer import FinishedRequest, StepLog, StepObserver, StepReport
from .summary import WorkerSummary
from .tokenizer import ByteTokenizer

__all__ = [
    "ATTENTION_PATHS",
    "SCENARIOS",
    "BlockManager",
    "ByteTokenizer",
    "CausalLM",
    "ChatLoad",
    "ChatScenario",
    "Engine",
    "EngineConfig",
    "FinishedRequest",
    "PrefixMatch",
    "StepLog",
    "StepObserver",
    "StepReport",
    "TurnRequest",
    "WorkerSummary",
    "build_model",
    "hf_config_kwargs",
    "run_load",
]
