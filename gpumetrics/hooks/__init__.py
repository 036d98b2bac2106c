"""The engine-facing hooks: cumulative engine metrics, recorded in-process, O(1), never raising.

Standard library only (plus gpumetrics' pure-Python catalog and cost model): importing this
package pulls no prometheus_client, OpenTelemetry, pynvml, torch, click or rich.

    from gpumetrics.costmodel import find_model
    from gpumetrics.hooks import EngineMetrics

    metrics = EngineMetrics("engine-0", "llama-3-8b", model_spec=find_model("llama-3-8b"))
    endpoint = metrics.serve(port=9400)        # GET http://127.0.0.1:9400/metrics
    t0 = metrics.clock()
    ...                                        # one forward pass
    metrics.record_step(phase="decode", sequences=32, prefill_tokens=0, decode_tokens=32,
                        duration_s=metrics.clock() - t0,
                        work=[RequestWork.decode(ctx) for ctx in contexts])

Thread-safety: one writer thread per EngineMetrics (the engine loop), any number of lock-free
readers (see `gpumetrics.hooks.metrics`).
"""

from ..promtext import CONTENT_TYPE, render_samples
from .endpoint import MetricsEndpoint, SampleReader, serve
from .metrics import PHASES, EngineMetrics

__all__ = [
    "CONTENT_TYPE",
    "PHASES",
    "EngineMetrics",
    "MetricsEndpoint",
    "SampleReader",
    "render_samples",
    "serve",
]
