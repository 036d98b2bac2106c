"""KV-cache sizing: prefix-cache hit ratio against KV capacity, from traces.

Read a trace (`reader`: Mooncake JSONL, our recorded format, conversations), get the exact
curve at every capacity in one pass (`mrc.exact_curve`) or a SHARDS estimate for huge traces
(`shards.sampled_curve`), price it for a model on a GPU (`sizing`). `replay.PrefixLru` is the
cache model itself and `ghost.GhostCache` its live SHARDS-sampled predictor, both standard
library only (importing them, or this package, does not import numpy). No clock and no OS
outside `reader`: traces are passed in. The command-line equivalent:
`gpumetrics kv-size --trace T --model M --gpu G`.

    from pathlib import Path
    from gpumetrics.kvsize import ReadReport, concat, exact_curve, read_trace

    report = ReadReport("trace.jsonl")
    curve = exact_curve(concat(read_trace(Path("trace.jsonl"), report)))
    print(curve.max_hit_ratio, curve.hit_ratio([1024, 4096]))
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .ghost import GhostCache
from .hashing import chain_hashes, mix64, sample_threshold
from .replay import PrefixLru, replay

if TYPE_CHECKING:
    from .mrc import MissRatioCurve, exact_curve, prefix_distances
    from .reader import ReadReport, load_tokenizer, read_trace
    from .shards import SampledCurve, sampled_curve
    from .sizing import KvCosts, SizingReport, SizingRow, kv_costs, size
    from .synthetic import SyntheticChat, synthetic_chunks
    from .trace import References, Request, Trace, concat

#: Names from modules that need numpy, imported on first use so that the standard-library
#: part (GhostCache, PrefixLru, hashing) can be used where numpy is not wanted.
_LAZY = {
    "MissRatioCurve": "mrc",
    "exact_curve": "mrc",
    "prefix_distances": "mrc",
    "ReadReport": "reader",
    "load_tokenizer": "reader",
    "read_trace": "reader",
    "SampledCurve": "shards",
    "sampled_curve": "shards",
    "KvCosts": "sizing",
    "SizingReport": "sizing",
    "SizingRow": "sizing",
    "kv_costs": "sizing",
    "size": "sizing",
    "SyntheticChat": "synthetic",
    "synthetic_chunks": "synthetic",
    "References": "trace",
    "Request": "trace",
    "Trace": "trace",
    "concat": "trace",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "GhostCache",
    "KvCosts",
    "MissRatioCurve",
    "PrefixLru",
    "ReadReport",
    "References",
    "Request",
    "SampledCurve",
    "SizingReport",
    "SizingRow",
    "SyntheticChat",
    "Trace",
    "chain_hashes",
    "concat",
    "exact_curve",
    "kv_costs",
    "load_tokenizer",
    "mix64",
    "prefix_distances",
    "read_trace",
    "replay",
    "sample_threshold",
    "sampled_curve",
    "size",
    "synthetic_chunks",
]
