"""The plugin's engine-independent half: settings from vLLM's config, and one step's record.

Nothing here imports vLLM: `vllm_config` is read with `getattr`, so the unit tests drive the
recorder with plain objects shaped like vLLM 0.32's (tests/integrations/test_vllm.py).

Settings (environment variables of the vLLM process; none is needed):
* `GPUMETRICS_VLLM_ENGINE`: the `engine` label (default "vllm");
* `GPUMETRICS_VLLM_ENDPOINT=host:port`: serve the families on gpumetrics' hooks endpoint
  instead of vLLM's /metrics (DP rank r on port + r, each page one rank, no `dp_rank` label).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from ..costmodel import ModelSpec, from_hf_dict
from ..hooks import EngineMetrics, MetricsEndpoint
from .vllm_cost import LinearCost
from .vllm_prom import PromSink
from .vllm_step import StepReader, StepReading

__all__ = [
    "HooksSink",
    "Recorder",
    "Settings",
    "Sink",
    "make_recorder",
    "model_spec",
    "settings",
]

log = logging.getLogger("gpumetrics.integrations.vllm")

#: Torch dtype names (str(torch.bfloat16) == "torch.bfloat16") -> the cost model's dtypes.
_DTYPES = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float32": "fp32",
    "float": "fp32",
    "float8_e4m3fn": "fp8",
    "float8_e5m2": "fp8",
    "int8": "int8",
}


class Sink(Protocol):
    """Where a step's reading goes: vLLM's registry (`PromSink`) or the hooks (`HooksSink`)."""

    def apply(
        self, r: StepReading, work: tuple[float, float, float, float], evicted_blocks: float
    ) -> None: ...

    def hook_error(self) -> None: ...


class Settings:
    """What the plugin reads from vLLM's config and the environment."""

    __slots__ = ("block_size", "capacity", "dtype", "endpoint", "engine", "eviction_sample",
                 "kv_dtype", "max_seqs", "max_tokens", "model", "spec", "spec_tokens")  # fmt: skip

    def __init__(self) -> None:
        self.engine, self.model = "vllm", "unknown"
        self.spec: ModelSpec | None = None
        self.dtype = self.kv_dtype = "bf16"
        self.capacity: int | None = None
        self.block_size: int | None = None
        self.max_seqs: int | None = None
        self.max_tokens: int | None = None
        self.eviction_sample = 0.0
        self.spec_tokens = 0
        """Draft tokens per step with speculative decoding (0: none configured)."""
        self.endpoint: tuple[str, int] | None = None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _dtype(value: object, default: str) -> str:
    name = str(value).removeprefix("torch.")
    return _DTYPES.get(name, "fp8" if name.startswith("fp8") else default)


def model_spec(hf_config: Any) -> ModelSpec | None:
    """The cost model's spec of the served model from its transformers config (None, with a
    warning, when it is not a shape the cost model knows)."""
    try:
        raw = hf_config.to_dict() if hasattr(hf_config, "to_dict") else dict(hf_config)
        return from_hf_dict(raw, source="vllm hf_config")
    except Exception as exc:
        log.warning("gpumetrics: no FLOPs/bytes for this model (%s)", exc)
        return None


def settings(vllm_config: Any, environ: Mapping[str, str]) -> Settings:
    """Read `vllm_config` (vLLM's VllmConfig) and `environ`; never raises on a missing field
    (that value is simply not exported). A bad GPUMETRICS_VLLM_ENDPOINT raises ValueError."""
    s = Settings()
    s.engine = environ.get("GPUMETRICS_VLLM_ENGINE", "") or "vllm"
    endpoint = environ.get("GPUMETRICS_VLLM_ENDPOINT", "")
    if endpoint:
        host, _, port = endpoint.rpartition(":")
        if not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"GPUMETRICS_VLLM_ENDPOINT must be host:port, got {endpoint!r}")
        s.endpoint = (host or "127.0.0.1", int(port))
    model = getattr(vllm_config, "model_config", None)
    cache = getattr(vllm_config, "cache_config", None)
    sched = getattr(vllm_config, "scheduler_config", None)
    obs = getattr(vllm_config, "observability_config", None)
    speculative = getattr(vllm_config, "speculative_config", None)
    if speculative is not None:
        s.spec_tokens = _count(getattr(speculative, "num_speculative_tokens", None)) or 0
    if model is not None:
        s.model = str(
            getattr(model, "served_model_name", None) or getattr(model, "model", "unknown")
        )
        s.dtype = _dtype(getattr(model, "dtype", "bfloat16"), "bf16")
        hf = getattr(model, "hf_config", None)
        s.spec = model_spec(hf) if hf is not None else None
    s.kv_dtype = s.dtype
    if cache is not None:
        cache_dtype = str(getattr(cache, "cache_dtype", "auto"))
        s.kv_dtype = s.dtype if cache_dtype == "auto" else _dtype(cache_dtype, s.dtype)
        s.capacity = _count(getattr(cache, "num_gpu_blocks", None))
        s.block_size = _count(getattr(cache, "block_size", None))
    if sched is not None:
        s.max_seqs = _count(getattr(sched, "max_num_seqs", None))
        s.max_tokens = _count(getattr(sched, "max_num_batched_tokens", None))
    if obs is not None and getattr(obs, "kv_cache_metrics", False):
        sample = getattr(obs, "kv_cache_metrics_sample", 0.0)
        s.eviction_sample = float(sample) if isinstance(sample, int | float) else 0.0
    return s


class HooksSink:
    """A step's reading fed to an `EngineMetrics` (served on the hooks endpoint). Prompt and
    cached tokens count at a request's finish here (the hooks' convention), where the
    registry sink counts them as vLLM does, when the prefill completes; prompt tokens by KV
    origin are left out here (the hooks take them per request, vLLM's stats give step sums)."""

    def __init__(
        self,
        metrics: EngineMetrics,
        kv_capacity_blocks: int | None,
        endpoint: MetricsEndpoint | None = None,
    ) -> None:
        self.metrics, self._capacity, self.endpoint = metrics, kv_capacity_blocks, endpoint

    def hook_error(self) -> None:
        # The hooks' own error counter (one family, one count); the recorder logs.
        self.metrics._drop("vllm_plugin", ValueError("see the plugin's warning"))

    def apply(
        self, r: StepReading, work: tuple[float, float, float, float], evicted_blocks: float
    ) -> None:
        m = self.metrics
        if r.running is not None and r.waiting is not None:
            m.set_queue(waiting=r.waiting, running=r.running)
        cap = self._capacity
        if r.kv_usage is not None and cap:
            m.record_kv(used_blocks=min(round(r.kv_usage * cap), cap), total_blocks=cap)
        if r.prefix_queries:
            m.record_prefix_lookup(queried_tokens=r.prefix_queries, hit_tokens=r.prefix_hits)
        if r.recomputed_tokens:
            m.record_recompute(r.recomputed_tokens, flops=work[3])
        if r.preemptions:
            m.record_preemption(r.preemptions)
        if r.external_queries:
            m.record_external_prefix_lookup(
                queried_tokens=r.external_queries, hit_tokens=r.external_hits
            )
        if r.spec_drafts:
            m.record_spec_decode(
                drafts=r.spec_drafts,
                draft_tokens=r.spec_draft_tokens,
                accepted_tokens=r.spec_accepted_tokens,
                accepted_per_position=r.spec_accepted_per_position,
            )
        if evicted_blocks:
            m.record_eviction(round(evicted_blocks))
        phase = r.phase
        if phase is not None:
            m.record_step(
                phase=phase,
                sequences=r.sequences,
                prefill_tokens=r.prefill_tokens,
                decode_tokens=r.decode_tokens,
                duration_s=r.duration_s or 0.0,
                flops=work[0],
                read_bytes=work[1],
                write_bytes=work[2],
            )
        for req in r.finished:
            m.record_request_finished(
                ttft_s=req.ttft_s,
                inter_token_s=None,
                e2e_s=req.e2e_s,
                prompt_tokens=req.prompt_tokens,
                cached_tokens=req.cached_tokens,
                output_tokens=req.generated_tokens,
            )


class Recorder:
    """One DP rank: reads each step (`StepReader`), costs it (`LinearCost`) and hands both to
    its sink. `record` never raises: a failure or a field vLLM no longer has counts
    `gpumetrics_engine_hook_errors_total` and is logged once per kind."""

    __slots__ = ("_cost", "_eviction_scale", "_logged", "reader", "sink")

    def __init__(self, sink: Sink, s: Settings) -> None:
        self.sink = sink
        self.reader = StepReader()
        self._cost = (
            LinearCost(s.spec, dtype=s.dtype, kv_dtype=s.kv_dtype) if s.spec is not None else None
        )
        self._eviction_scale = 1.0 / s.eviction_sample if s.eviction_sample > 0 else 0.0
        self._logged: set[str] = set()

    def record(self, scheduler_stats: Any, iteration_stats: Any) -> None:
        try:
            r = self.reader.read(scheduler_stats, iteration_stats)
            cost = self._cost
            if cost is not None:
                tokens = r.prefill_tokens + r.decode_tokens
                work = (
                    cost.flops(tokens, r.token_context, r.logits),
                    cost.read_bytes(tokens, r.context) if tokens else 0.0,
                    cost.write_bytes(tokens),
                    cost.flops(r.recomputed_tokens, r.recompute_token_context, 0),
                )
            else:
                work = (0.0, 0.0, 0.0, 0.0)
            self.sink.apply(r, work, r.evicted_block_samples * self._eviction_scale)
            if r.missing:
                self._error("missing", f"vLLM's stats lack {', '.join(r.missing)}")
        except Exception as exc:
            self._error(type(exc).__name__, repr(exc))

    def _error(self, kind: str, what: str) -> None:
        try:
            self.sink.hook_error()
            if kind not in self._logged:
                self._logged.add(kind)
                log.warning(
                    "gpumetrics vLLM plugin: %s (counted in gpumetrics_engine_hook_errors_total;"
                    " logged once)",
                    what,
                )
        except Exception:  # never raise into vLLM
            pass


def make_recorder(
    vllm_config: Any,
    engine_index: int,
    environ: Mapping[str, str] | None = None,
    registry: CollectorRegistry | None = None,
) -> Recorder:
    """The recorder for one DP rank (`registry`: prometheus_client's by default)."""
    s: Settings = settings(vllm_config, os.environ if environ is None else environ)
    sink: Sink
    if s.endpoint is None:
        sink = PromSink(
            s.engine,
            s.model,
            engine_index,
            registry=registry,
            kv_capacity_blocks=s.capacity,
            kv_block_size=s.block_size,
            max_batch_sequences=s.max_seqs,
            max_batch_tokens=s.max_tokens,
            spec_positions=s.spec_tokens,
        )
    else:
        metrics = EngineMetrics(
            s.engine,
            s.model,
            max_batch_sequences=s.max_seqs,
            max_batch_tokens=s.max_tokens,
            kv_block_size=s.block_size,
            kv_capacity_blocks=s.capacity,
            kv_predict_sample_rate=None,
        )
        host, port = s.endpoint
        endpoint = metrics.serve(host, port + engine_index if port else 0)
        sink = HooksSink(metrics, s.capacity, endpoint)
    return Recorder(sink, s)
