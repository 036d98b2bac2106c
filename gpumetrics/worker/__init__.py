"""The reference inference worker: a nano-vllm-sized engine that exercises every engine metric.

A torch-free core: the request (`sequence`, with an explicit status), the paged KV cache's
bookkeeping with prefix caching and LRU eviction (`block_manager`), continuous batching with
preemption by recompute (`scheduler`), the step report and its observers (`observer`: the hooks
adapter, the worker's own counters in `summary`, a step log), the loop (`engine`) and a
multi-turn chat load (`loadgen`). The torch side: a Llama-style decoder with seeded random
weights (`llama`), attention over the paged cache (`attention`) and the model runner that
executes a scheduled step (`runner`); also `calibrate` and the profiler's `cell_runner`. Only
the torch side imports torch (`pip install 'gpumetrics[worker]'`), and this package imports
its modules lazily: `import gpumetrics.worker.scheduler` loads no torch.

    from gpumetrics.costmodel import PRESETS
    from gpumetrics.worker import ChatLoad, Engine, EngineConfig, SCENARIOS, ByteTokenizer, run_load

    engine = Engine(EngineConfig(PRESETS["tiny"], kv_blocks=64))
    load = ChatLoad(SCENARIOS["chat"], ByteTokenizer(320), max_context=64 * 16)
    print(run_load(engine, load, requests=20).as_dict())

The command-line equivalent: `gpumetrics worker --model tiny --kv-blocks 64 --requests 20`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, imported on first use by __getattr__
    from .attention import ATTENTION_PATHS
    from .block_manager import BlockManager, PrefixMatch
    from .engine import Engine, EngineConfig
    from .llama import CausalLM, build_model, hf_config_kwargs
    from .loadgen import SCENARIOS, ChatLoad, ChatScenario, TurnRequest, run_load
    from .observer import FinishedRequest, StepLog, StepObserver, StepReport
    from .runner import ModelRunner
    from .summary import WorkerSummary
    from .tokenizer import ByteTokenizer

#: Public name -> the module that defines it (PEP 562: a module loads on its first name).
_EXPORTS = {
    "ATTENTION_PATHS": "attention",
    "BlockManager": "block_manager",
    "PrefixMatch": "block_manager",
    "Engine": "engine",
    "EngineConfig": "engine",
    "CausalLM": "llama",
    "build_model": "llama",
    "hf_config_kwargs": "llama",
    "SCENARIOS": "loadgen",
    "ChatLoad": "loadgen",
    "ChatScenario": "loadgen",
    "TurnRequest": "loadgen",
    "run_load": "loadgen",
    "FinishedRequest": "observer",
    "StepLog": "observer",
    "StepObserver": "observer",
    "StepReport": "observer",
    "ModelRunner": "runner",
    "WorkerSummary": "summary",
    "ByteTokenizer": "tokenizer",
}

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
    "ModelRunner",
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
