"""Recording rules: every ratio the dashboards show, named `gpumetrics:<what>:<window>`.

The exporter ships cumulative counters (DESIGN.md §3.2); these rules turn them into ratios
over a known window, with the same definitions as `gpumetrics.derive` (docs/design.md):
hit ratio = rate(hit) / rate(queried); intensity = rate(flops) / rate(bytes); MFU =
rate(flops) / peak FLOP/s of the engine's GPUs; MBU = rate(bytes) / their peak bandwidth;
load score = max(batch occupancy, KV usage). Dashboards and alerts use the name constants
below, never hand-typed names.

Latency histograms keep each engine's own buckets (METRICS.md), so engines are summed only on
the bounds all of them share: `FLEET_BUCKETS` keeps, per cluster and region, the `le` values
that every histogram series there has (a bound is shared when the number of series carrying
it equals the number of series), and sums the bucket rates on those. Cumulative counts at a
shared bound add up exactly; at a bound only some engines have, `sum by (le)` would add only
theirs and understate every quantile above it. Bounds compare as label strings; every engine
series comes through our exporter, which writes them one way.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ...catalog import engine as e
from ...catalog import gpu as g
from ...hardware import DTYPES
from . import pods
from .model import DEFAULT_CONFIG, Recording, RuleConfig, RuleGroup, record_name
from .promql import ENGINE_JOIN, FLEET_LABELS, GPU_JOIN, avg_over, by, rate, sel, without

__all__ = [
    "ARITHMETIC_INTENSITY",
    "BATCH_OCCUPANCY_SEQUENCES",
    "BATCH_OCCUPANCY_TOKENS",
    "CLUSTER_ENGINES",
    "CLUSTER_ENGINES_AT_CAPACITY",
    "CLUSTER_LOAD",
    "CLUSTER_WAITING",
    "COMPUTE_BOUND",
    "COMPUTE_FLOPS",
    "ENGINE_LOAD",
    "ENGINE_PEAK_BANDWIDTH",
    "ENGINE_PEAK_FLOPS",
    "ENGINE_RIDGE",
    "EXTERNAL_KV_HIT_RATIO",
    "FLEET_BUCKETS",
    "GPU_RIDGE",
    "INSTANCE_LOAD",
    "KV_HIT_RATIO",
    "KV_MISS_RATIO",
    "KV_MISS_RATIO_1H",
    "KV_USAGE_AVG",
    "MBU",
    "MEAN_BATCH_SIZE",
    "MEAN_STEP_TOKENS",
    "MEMORY_BYTES",
    "MFU",
    "PREFIX_QUERIED",
    "RECOMPUTE_FLOPS_SHARE",
    "REGION_LOAD",
    "SPEC_ACCEPTANCE_RATIO",
    "WINDOWS",
    "help_of",
    "recording_groups",
]

#: Rate windows: 5m for every ratio (dashboards, alerts); 1m as well where a dashboard shows
#: bursts (miss ratio, recompute share, intensity, MFU, MBU).
WINDOWS = ("1m", "5m")


def _windowed(what: str, windows: tuple[str, ...] = WINDOWS) -> Mapping[str, str]:
    return MappingProxyType({w: record_name(what, f"rate{w}") for w in windows})


PREFIX_QUERIED = _windowed("prefix_cache_queried_tokens", ("5m",))
KV_HIT_RATIO = _windowed("kv_cache_hit_ratio", ("5m",))
KV_MISS_RATIO = _windowed("kv_cache_miss_ratio")
KV_MISS_RATIO_1H = record_name("kv_cache_miss_ratio", "rate1h")
RECOMPUTE_FLOPS_SHARE = _windowed("recompute_flops_share")
KV_USAGE_AVG = record_name("kv_cache_usage", "avg5m")
EXTERNAL_KV_HIT_RATIO = _windowed("external_kv_cache_hit_ratio", ("5m",))
SPEC_ACCEPTANCE_RATIO = _windowed("spec_decode_acceptance_ratio", ("5m",))
MEAN_BATCH_SIZE = _windowed("mean_batch_size", ("5m",))
MEAN_STEP_TOKENS = _windowed("mean_step_tokens", ("5m",))
BATCH_OCCUPANCY_SEQUENCES = _windowed("batch_occupancy_sequences", ("5m",))
BATCH_OCCUPANCY_TOKENS = _windowed("batch_occupancy_tokens", ("5m",))
ENGINE_LOAD = record_name("engine_load_score", "5m")
INSTANCE_LOAD = record_name("instance_load_score", "5m")
CLUSTER_LOAD = record_name("cluster_load_score", "5m")
REGION_LOAD = record_name("region_load_score", "5m")
CLUSTER_ENGINES_AT_CAPACITY = record_name("cluster_engines_at_capacity", "5m")
CLUSTER_ENGINES = record_name("cluster_engines", "5m")
CLUSTER_WAITING = record_name("cluster_waiting_requests", "avg5m")
GPU_RIDGE = record_name("gpu_ridge_point", "ratio")
ENGINE_PEAK_FLOPS = record_name("engine_peak_flops_per_second", "sum")
ENGINE_PEAK_BANDWIDTH = record_name("engine_peak_memory_bandwidth_bytes_per_second", "sum")
ENGINE_RIDGE = record_name("engine_ridge_point", "ratio")
COMPUTE_FLOPS = _windowed("compute_flops_per_second")
MEMORY_BYTES = _windowed("memory_bytes_per_second")
ARITHMETIC_INTENSITY = _windowed("arithmetic_intensity")
MFU = _windowed("mfu")
MBU = _windowed("mbu")
COMPUTE_BOUND = record_name("compute_bound", "rate5m")
#: Bucket rates per cluster and region on the shared bounds, by latency histogram.
FLEET_BUCKETS: Mapping[str, str] = MappingProxyType(
    {
        spec.name: record_name(
            f"fleet_{spec.name.removeprefix('gpumetrics_engine_')}_bucket", "rate5m"
        )
        for spec in (e.TTFT, e.ITL, e.E2E)
    }
)

_ON_ENGINE = f"on ({', '.join(ENGINE_JOIN)})"
_ON_GPU = f"on ({', '.join(GPU_JOIN)})"
_STEPS = {w: f"sum {without('phase')} ({rate(e.STEPS, w)})" for w in WINDOWS}


def _kv_cache() -> tuple[Recording, ...]:
    queried, hit = rate(e.PREFIX_QUERIED, "5m"), rate(e.PREFIX_HIT, "5m")
    rules = [
        Recording(PREFIX_QUERIED["5m"], queried, "Prompt tokens looked up per second (5m)."),
        Recording(KV_HIT_RATIO["5m"], f"{hit} / {queried}", "Prefix-cache hit ratio (5m)."),
    ]
    for w in KV_MISS_RATIO:
        queried, hit = rate(e.PREFIX_QUERIED, w), rate(e.PREFIX_HIT, w)
        rules.append(
            Recording(
                KV_MISS_RATIO[w],
                f"({queried} - {hit}) / {queried}",
                f"Prefix-cache miss ratio ({w}).",
            )
        )
    for w in RECOMPUTE_FLOPS_SHARE:
        rules.append(
            Recording(
                RECOMPUTE_FLOPS_SHARE[w],
                f"{rate(e.RECOMPUTED_FLOPS, w)} / {rate(e.FLOPS, w)}",
                f"Share of FLOPs spent recomputing evicted or preempted KV ({w}).",
            )
        )
    ext_queried = rate(e.EXTERNAL_PREFIX_QUERIED, "5m")
    rules.append(
        Recording(
            EXTERNAL_KV_HIT_RATIO["5m"],
            f"{rate(e.EXTERNAL_PREFIX_HIT, '5m')} / {ext_queried}",
            "External (KV connector) prefix-cache hit ratio: prompt tokens found in the "
            "external KV store over those looked up there (5m).",
        )
    )
    rules.append(
        Recording(
            SPEC_ACCEPTANCE_RATIO["5m"],
            f"{rate(e.SPEC_ACCEPTED_TOKENS, '5m')} / {rate(e.SPEC_DRAFT_TOKENS, '5m')}",
            "Speculative-decoding acceptance ratio: draft tokens accepted over draft tokens "
            "proposed (5m).",
        )
    )
    rules.append(
        Recording(
            KV_MISS_RATIO_1H,
            f"({rate(e.PREFIX_QUERIED, '1h')} - {rate(e.PREFIX_HIT, '1h')})\n"
            f"/ {rate(e.PREFIX_QUERIED, '1h')}",
            "Prefix-cache miss ratio over 1h, token-weighted: the baseline of the miss-spike "
            "alert.",
        )
    )
    return tuple(rules)


def _load_score() -> str:
    batch = f'label_replace({BATCH_OCCUPANCY_SEQUENCES["5m"]}, "constraint", "batch", "", "")'
    kv = f'label_replace({KV_USAGE_AVG}, "constraint", "kv_cache", "", "")'
    return f"max {without('constraint')} (\n  {batch}\n  or\n  {kv}\n)"


def _batching_and_load(config: RuleConfig) -> tuple[Recording, ...]:
    rules: list[Recording] = []
    for w in MEAN_BATCH_SIZE:
        tokens = f"sum {without('phase')} ({rate(e.STEP_TOKENS, w)})"
        rules += [
            Recording(
                MEAN_BATCH_SIZE[w],
                f"{rate(e.STEP_SEQUENCES, w)} / {_STEPS[w]}",
                f"Mean sequences per engine step ({w}).",
            ),
            Recording(
                MEAN_STEP_TOKENS[w], f"{tokens} / {_STEPS[w]}", f"Mean tokens per step ({w})."
            ),
            Recording(
                BATCH_OCCUPANCY_SEQUENCES[w],
                f"clamp_max({MEAN_BATCH_SIZE[w]} / {sel(e.MAX_BATCH_SEQUENCES)}, 1)",
                f"Mean batch over max_num_seqs ({w}).",
            ),
            Recording(
                BATCH_OCCUPANCY_TOKENS[w],
                f"clamp_max({MEAN_STEP_TOKENS[w]} / {sel(e.MAX_BATCH_TOKENS)}, 1)",
                f"Mean tokens per step over max_num_batched_tokens ({w}).",
            ),
        ]
    fleet = by(*FLEET_LABELS)
    rules += [
        Recording(KV_USAGE_AVG, avg_over(e.KV_USAGE, "5m"), "KV-cache usage, 5m average."),
        Recording(
            ENGINE_LOAD,
            _load_score(),
            "Load score: max(batch occupancy, KV usage); 1 = at the binding constraint.",
        ),
        Recording(
            INSTANCE_LOAD,
            f"avg {by(*FLEET_LABELS, 'instance')} ({ENGINE_LOAD})",
            "Mean load score of a node's engines.",
        ),
        Recording(CLUSTER_LOAD, f"avg {fleet} ({ENGINE_LOAD})", "Mean load score by cluster."),
        Recording(REGION_LOAD, f"avg {by('region')} ({ENGINE_LOAD})", "Mean load by region."),
        Recording(
            CLUSTER_ENGINES_AT_CAPACITY,
            f"sum {fleet} ({ENGINE_LOAD} >= bool {config.capacity_threshold:g})",
            f"Engines with load score >= {config.capacity_threshold:g}, by cluster.",
        ),
        Recording(CLUSTER_ENGINES, f"count {fleet} ({ENGINE_LOAD})", "Engines by cluster."),
        Recording(
            CLUSTER_WAITING,
            f"sum {fleet} ({avg_over(e.WAITING_REQUESTS, '5m')})",
            "Requests queued across a cluster's engines, 5m average.",
        ),
    ]
    return tuple(rules)


def _engine_peak_flops() -> str:
    info = sel(e.ENGINE_GPU_INFO)
    peaks = [sel(g.PEAK_FLOPS, 'dtype="' + dtype + '"') for dtype in DTYPES]
    parts = [f"({info} * {_ON_GPU} group_left (dtype) {peak})" for peak in peaks]
    # One term per dtype keeps each join one-to-one even when two engines share a GPU.
    return f"sum {without('gpu', 'gpu_uuid')} (\n  " + "\n  or\n  ".join(parts) + "\n)"


def _roofline() -> tuple[Recording, ...]:
    info = sel(e.ENGINE_GPU_INFO)
    rules = [
        Recording(
            GPU_RIDGE,
            f"{sel(g.PEAK_FLOPS)} / ignoring (dtype) group_left {sel(g.PEAK_MEMORY_BANDWIDTH)}",
            "Ridge point of each GPU by dtype: peak FLOP/s over peak bytes/s (FLOP per byte).",
        ),
        Recording(
            ENGINE_PEAK_FLOPS,
            _engine_peak_flops(),
            "Dense peak FLOP/s of the GPUs an engine runs on, by dtype.",
        ),
        Recording(
            ENGINE_PEAK_BANDWIDTH,
            f"sum {without('gpu', 'gpu_uuid')} "
            f"({info} * {_ON_GPU} group_left {sel(g.PEAK_MEMORY_BANDWIDTH)})",
            "Peak memory bandwidth of the GPUs an engine runs on.",
        ),
        Recording(
            ENGINE_RIDGE,
            f"{ENGINE_PEAK_FLOPS} / ignoring (dtype) group_left {ENGINE_PEAK_BANDWIDTH}",
            "Ridge point of an engine's GPUs by dtype (FLOP per byte).",
        ),
    ]
    for w in WINDOWS:
        traffic = f"{rate(e.READ_BYTES, w)} + {rate(e.WRITE_BYTES, w)}"
        rules += [
            Recording(COMPUTE_FLOPS[w], rate(e.FLOPS, w), f"Achieved FLOP/s ({w})."),
            Recording(
                MEMORY_BYTES[w],
                f"({traffic})\nor\n{rate(e.READ_BYTES, w)}",
                f"Memory traffic, read + written bytes per second ({w}).",
            ),
            Recording(
                ARITHMETIC_INTENSITY[w],
                f"{COMPUTE_FLOPS[w]} / {MEMORY_BYTES[w]}",
                f"Arithmetic intensity, FLOPs per byte moved ({w}).",
            ),
            Recording(
                MFU[w],
                f"{COMPUTE_FLOPS[w]} / {_ON_ENGINE} group_right {ENGINE_PEAK_FLOPS}",
                f"Model FLOPs utilisation by dtype: achieved over dense peak ({w}).",
            ),
            Recording(
                MBU[w],
                f"{MEMORY_BYTES[w]} / {_ON_ENGINE} group_left {ENGINE_PEAK_BANDWIDTH}",
                f"Memory bandwidth utilisation: achieved over peak ({w}).",
            ),
        ]
    rules.append(
        Recording(
            COMPUTE_BOUND,
            f"{ARITHMETIC_INTENSITY['5m']} >= bool {_ON_ENGINE} group_right {ENGINE_RIDGE}",
            "1 when the engine's intensity is at or above its GPUs' ridge (compute-bound), "
            "0 when below (memory-bound), by dtype.",
        )
    )
    return tuple(rules)


def _shared_bounds(bucket: str) -> str:
    """Bucket rates summed by fleet and `le` on the bounds every series there has."""
    fleet = ", ".join(FLEET_LABELS)
    rates = rate(bucket, "5m")
    return (
        f"sum by ({fleet}, le) ({rates})\n"
        f"and on ({fleet}, le)\n"
        f"(\n  count by ({fleet}, le) ({rates})\n"
        f"  == on ({fleet}) group_left\n"
        f"  count by ({fleet}) (count {without('le')} ({rates}))\n)"
    )


def _latency() -> tuple[Recording, ...]:
    return tuple(
        Recording(
            record,
            _shared_bounds(f"{name}_bucket"),
            f"{name} bucket rates per cluster and region, summed on the bounds every engine "
            "there shares (engines keep their own buckets); histogram_quantile over it (5m).",
        )
        for name, record in FLEET_BUCKETS.items()
    )


def recording_groups(config: RuleConfig = DEFAULT_CONFIG) -> tuple[RuleGroup, ...]:
    """The recording-rule groups, in evaluation order (dependencies share a group)."""
    return (
        RuleGroup("gpumetrics-kv-cache", _kv_cache()),
        RuleGroup("gpumetrics-batching-and-load", _batching_and_load(config)),
        RuleGroup(
            "gpumetrics-roofline",
            _roofline() + pods.rules(COMPUTE_FLOPS["5m"], MEMORY_BYTES["5m"]),
        ),
        RuleGroup("gpumetrics-latency", _latency()),
    )


def help_of(record: str, config: RuleConfig = DEFAULT_CONFIG) -> str:
    """The meaning of a recording rule, for panel descriptions; KeyError if there is none."""
    for group in recording_groups(config):
        for rule in group.rules:
            if isinstance(rule, Recording) and rule.record == record:
                return f"{record}: {rule.help}"
    raise KeyError(f"no recording rule named {record!r}")
