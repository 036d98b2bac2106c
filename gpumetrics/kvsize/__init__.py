"""KV-cache sizing: prefix-cache hit ratio against KV capacity, from traces.

Read a trace (`reader`: Mooncake JSONL, our recorded format, conversations), get the exact
curve at every capacity in one pass (`mrc.exact_curve`) or a SHARDS estimate for huge traces
(`shards.sampled_curve`), price it for a model on a GPU (`sizing`). `replay.PrefixLru` is the
cache model itself, standard library only. No clock and no OS outside `reader`: traces are
passed in. The command-line equivalent: `gpumetrics kv-size --trace T --model M --gpu G`.

    from pathlib import Path
    from gpumetrics.kvsize import ReadReport, concat, exact_curve, read_trace

    report = ReadReport("trace.jsonl")
    curve = exact_curve(concat(read_trace(Path("trace.jsonl"), report)))
    print(curve.max_hit_ratio, curve.hit_ratio([1024, 4096]))
"""

from .hashing import chain_hashes, mix64, sample_threshold
from .mrc import MissRatioCurve, exact_curve, prefix_distances
from .reader import ReadReport, load_tokenizer, read_trace
from .replay import PrefixLru, replay
from .shards import SampledCurve, sampled_curve
from .sizing import KvCosts, SizingReport, SizingRow, kv_costs, size
from .synthetic import SyntheticChat, synthetic_chunks
from .trace import References, Request, Trace, concat

__all__ = [
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
