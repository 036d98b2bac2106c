"""Hook hot path, side by side: gpumetrics.hooks vs prometheus_client vs the OpenTelemetry SDK.

One command, one process, the same loop for every contender (DESIGN.md §7): absolute times on
a shared machine are noisy, the ratios hold. Each case is timed `timeit`-style — a string
statement in a tight loop, `number` chosen by `Timer.autorange` — repeated `--repeat` times;
the best (lowest) repeat is reported in ns per operation, with its ratio to prometheus_client.

Cases:
  counter  one counter event: EngineMetrics.record_eviction() vs a pre-bound prometheus_client
           Counter child's .inc() vs OTel Counter.add(1, attributes) (attributes built once)
  step     one engine step: record_step(...) with explicit FLOPs/bytes, and with the cost model
           computing them from 32 RequestWork (llama-3-8b), vs the equivalent prometheus_client
           calls on pre-bound children (8 .inc() + 1 Histogram .observe()) vs the same 9 OTel
           calls (8 Counter.add + 1 Histogram.record, attributes built once)
  render   EngineMetrics.render_text() of one engine (all families), for scale; no peer row

Usage: .venv/bin/python benchmarks/bench_hooks.py [--repeat N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import timeit
from dataclasses import asdict, dataclass
from importlib.metadata import version
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, Counter, Histogram

from gpumetrics.catalog import engine as cat
from gpumetrics.costmodel import RequestWork, find_model
from gpumetrics.hooks import EngineMetrics

BASELINE = "prometheus_client"


@dataclass(frozen=True, slots=True)
class Row:
    """One timed contender of one case."""

    case: str
    impl: str
    what: str
    ns_per_op: float
    ratio: float | None  # ns_per_op / the prometheus_client row of the same case


def _best_ns(stmt: str, namespace: dict[str, Any], repeat: int) -> float:
    """Best-of-`repeat` nanoseconds per execution of `stmt`."""
    timer = timeit.Timer(stmt, globals=namespace)
    number, _ = timer.autorange()  # enough loops for >= 0.2 s
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def _prometheus(labels: dict[str, str]) -> dict[str, Any]:
    """Pre-bound prometheus_client children for the step's families (own registry)."""
    reg = CollectorRegistry()
    names = list(labels)

    def counter(spec_name: str, extra: tuple[str, ...] = ()) -> Counter:
        return Counter(spec_name.removesuffix("_total"), "h", [*names, *extra], registry=reg)

    steps = counter(cat.STEPS.name, ("phase",))
    tokens = counter(cat.STEP_TOKENS.name, ("phase",))
    hist = Histogram(
        cat.STEP_DURATION.name, "h", names, registry=reg, buckets=cat.STEP_DURATION.buckets
    )
    values = labels.values()
    return {
        "p_evicted": counter(cat.KV_EVICTED_BLOCKS.name).labels(*values),
        "p_steps": steps.labels(*values, "decode"),
        "p_seqs": counter(cat.STEP_SEQUENCES.name).labels(*values),
        "p_tok_prefill": tokens.labels(*values, "prefill"),
        "p_tok_decode": tokens.labels(*values, "decode"),
        "p_busy": counter(cat.STEP_BUSY.name).labels(*values),
        "p_flops": counter(cat.FLOPS.name).labels(*values),
        "p_read": counter(cat.READ_BYTES.name).labels(*values),
        "p_write": counter(cat.WRITE_BYTES.name).labels(*values),
        "p_hist": hist.labels(*values),
    }


def _otel(labels: dict[str, str]) -> dict[str, Any]:
    """OTel SDK instruments on a MeterProvider read by an InMemoryMetricReader."""
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
    spec = cat.STEP_DURATION
    return {
        "o_evicted": meter.create_counter(cat.KV_EVICTED_BLOCKS.otel_name),
        "o_steps": meter.create_counter(cat.STEPS.otel_name),
        "o_seqs": meter.create_counter(cat.STEP_SEQUENCES.otel_name),
        "o_tokens": meter.create_counter(cat.STEP_TOKENS.otel_name),
        "o_busy": meter.create_counter(cat.STEP_BUSY.otel_name),
        "o_flops": meter.create_counter(cat.FLOPS.otel_name),
        "o_read": meter.create_counter(cat.READ_BYTES.otel_name),
        "o_write": meter.create_counter(cat.WRITE_BYTES.otel_name),
        "o_hist": meter.create_histogram(
            spec.otel_name, unit="s", explicit_bucket_boundaries_advisory=list(spec.buckets)
        ),
        "o_attrs": dict(labels),
        "o_decode": {**labels, "phase": "decode"},
        "o_prefill": {**labels, "phase": "prefill"},
    }


STEP_ARGS = (
    'phase="decode", sequences=32, prefill_tokens=0, decode_tokens=32, duration_s=0.02, '
    "flops=flops, read_bytes=read_bytes, write_bytes=write_bytes"
)
PROM_STEP = """\
p_steps.inc()
p_seqs.inc(32)
p_tok_prefill.inc(0)
p_tok_decode.inc(32)
p_busy.inc(0.02)
p_flops.inc(flops)
p_read.inc(read_bytes)
p_write.inc(write_bytes)
p_hist.observe(0.02)"""
OTEL_STEP = """\
o_steps.add(1, o_decode)
o_seqs.add(32, o_attrs)
o_tokens.add(0, o_prefill)
o_tokens.add(32, o_decode)
o_busy.add(0.02, o_attrs)
o_flops.add(flops, o_attrs)
o_read.add(read_bytes, o_attrs)
o_write.add(write_bytes, o_attrs)
o_hist.record(0.02, o_attrs)"""


def run(repeat: int) -> list[Row]:
    """Time every case; rows in print order."""
    labels = {"engine": "bench-0", "model": "llama-3-8b"}
    spec = find_model("llama-3-8b")
    ours = EngineMetrics(labels["engine"], labels["model"], model_spec=spec)
    work = [RequestWork.decode(1024 + 17 * i) for i in range(32)]
    ns: dict[str, Any] = {
        "m": ours,
        "work": work,
        "flops": 5.0e11,
        "read_bytes": 1.7e10,
        "write_bytes": 4.2e6,
        **_prometheus(labels),
        **_otel(labels),
    }
    cases = [
        ("counter", "gpumetrics.hooks", "record_eviction()", "m.record_eviction()"),
        ("counter", BASELINE, "pre-bound Counter child .inc()", "p_evicted.inc()"),
        ("counter", "opentelemetry-sdk", "Counter.add(1, attrs)", "o_evicted.add(1, o_attrs)"),
        (
            "step",
            "gpumetrics.hooks",
            "record_step(explicit flops/bytes)",
            f"m.record_step({STEP_ARGS})",
        ),
        (
            "step",
            "gpumetrics.hooks (cost model)",
            "record_step(work=32 RequestWork)",
            "m.record_step(phase='decode', sequences=32, prefill_tokens=0, decode_tokens=32, "
            "duration_s=0.02, work=work)",
        ),
        ("step", BASELINE, "8 .inc() + 1 .observe(), pre-bound", PROM_STEP),
        ("step", "opentelemetry-sdk", "8 Counter.add + 1 Histogram.record", OTEL_STEP),
        ("render", "gpumetrics.hooks", "render_text(), one engine", "m.render_text()"),
    ]
    timed = [(case, impl, what, _best_ns(stmt, ns, repeat)) for case, impl, what, stmt in cases]
    base = {case: t for case, impl, _, t in timed if impl == BASELINE}
    if ours.hook_errors:
        raise RuntimeError(f"the benchmark's own hook calls were dropped: {ours.hook_errors}")
    return [
        Row(case, impl, what, t, t / base[case] if case in base else None)
        for case, impl, what, t in timed
    ]


def machine() -> dict[str, Any]:
    """Where and with what the numbers were taken."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "prometheus_client": version("prometheus-client"),
        "opentelemetry_sdk": version("opentelemetry-sdk"),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }


def table(rows: list[Row]) -> str:
    """A plain-text table with ratios to prometheus_client."""
    header = f"{'case':<7} {'implementation':<30} {'what':<36} {'ns/op':>9} {'vs prom':>8}"
    lines = [header, "-" * len(header)]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        lines.append(
            f"{row.case:<7} {row.impl:<30} {row.what:<36} {row.ns_per_op:>9.1f} {ratio:>8}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="repeats per case (best is kept)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    rows = run(args.repeat)
    info = machine()
    if args.json:
        print(json.dumps({"machine": info, "rows": [asdict(r) for r in rows]}, indent=2))
        return
    print(" ".join(f"{k}={v}" for k, v in info.items() if k != "command"))
    print(table(rows))
    print(
        "ns/op: best of the repeats, timeit loop overhead included (the same for every row); "
        "'vs prom' = ns/op / prometheus_client's ns/op for the same case."
    )


if __name__ == "__main__":
    main()
