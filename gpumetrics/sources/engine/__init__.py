"""Engines' own /metrics, read through per-engine name maps into the catalog's engine families.

The sidecar reads an engine exactly as Prometheus would (DESIGN.md §3.3): one bounded HTTP GET
of Prometheus text per cycle (`fetch.py`), parsed (`parse.py`, prometheus_client's parser) and
mapped (`per_engine.py` names, `apply.py` aggregation) into samples labelled engine=<configured
name>, model=<served model>, plus `gpumetrics_engine_info{engine,model,kind}` and one
`gpumetrics_engine_gpu_info{engine,model,gpu,gpu_uuid}` per declared GPU (a GPU declared by
index only has gpu_uuid "", by UUID only gpu ""). Kinds: gpumetrics (our hooks, identity
map), vllm, sglang, trtllm (TensorRT-LLM on Triton), or auto (detected per scrape from the name
prefixes, an engine's own before ours; where both are on one page our families win family by
family, see `apply.py`). Failures raise `EngineError` with a code (errors.py); the Sampler
marks the source down and the others keep flowing (DESIGN.md §3.5).
"""

from __future__ import annotations

from ...engine_config import AUTO, KINDS, Endpoint, EngineConfig, GpuRef
from .apply import map_exposition
from .errors import EngineError
from .page import Exposition, RawSample
from .parse import decode, parse_text
from .per_engine import MAPS, detect_kind
from .source import EngineSource, collection_from_text, fetch_metrics

__all__ = [
    "AUTO",
    "KINDS",
    "MAPS",
    "Endpoint",
    "EngineConfig",
    "EngineError",
    "EngineSource",
    "Exposition",
    "GpuRef",
    "RawSample",
    "collection_from_text",
    "decode",
    "detect_kind",
    "fetch_metrics",
    "map_exposition",
    "parse_text",
]
