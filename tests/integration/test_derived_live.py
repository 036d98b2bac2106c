"""`serve`'s derived gauges agree with the recording rules, to 1 %, on the same data.

A real Prometheus scrapes `gpumetrics serve --fake-gpus h200x2 --fake-ib 1 --engine ...`
every second and evaluates the generated recording rules with their 5m windows compressed to
30s (`:rate5m` names, 30 s windows); serve derives its gauges over `--derived-window 30s`.
The engine is the real hooks endpoint (`gpumetrics.hooks.EngineMetrics.serve`) driven
deterministically: its counters are an exact function of the time it is scraped (50 steps a
second, each the same work, caught up at every scrape), so both sides see one trajectory.

How the two are compared, at one evaluation time:

- Ratios of counters from one source (hit and miss ratio, recompute share, intensity, mean
  batch, occupancies) and the averaged gauge (load score via mean KV usage) are compared
  as they are. rate() scales a counter's increase by the same factor for every series of one
  scrape target, both extrapolation towards the window's edges and the skew below, so a
  ratio of two rates carries none of it.
- Rates against a constant (FLOP/s, traffic, tokens/s; MFU, MBU, NVLink and IB utilisation)
  are divided by `rate(gpumetrics_source_last_success_timestamp_seconds{source=S}[30s])`
  first. Prometheus stamps a sample with its scrape time while the value was read by the
  source's last cycle up to a sampling interval (0.25 s) earlier, and rate() then
  extrapolates over the stamps: that skews a rate by up to ~1 % on a 30 s window. The
  last-success gauge is the cycle's own start time (the time serve's history uses), scraped
  with the counters, so this quotient is the increase per second of *sampling* time —
  extrapolation and skew cancel exactly as they do in a ratio.
- The per-GPU MFU/MBU and the NVLink/IB utilisations have no recording rule; they are held to
  the same definitions written in PromQL below.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from gpumetrics.catalog import derived as d
from gpumetrics.render.rules import recording as r

from .servers import http_get_json, prometheus, wait_for
from .sidecar import gpumetrics_serve
from .steady import steady_engine

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
WINDOW = "30s"
SOURCE_TIME = "gpumetrics_source_last_success_timestamp_seconds"
ENGINE_KEYS = ("engine", "model")
DTYPE_KEYS = ("engine", "model", "dtype")
GPU_KEYS = ("gpu_uuid", "dtype")
PORT_KEYS = ("ib_device", "port", "direction")


def _compress(rules: str) -> str:
    """The recording rules with 5m windows as 30s (1m as 10s, 1h as 60s); names unchanged."""
    windows = {"1m": "10s", "5m": WINDOW, "1h": "60s"}
    return re.sub(r"\[(\d+[mh])\]", lambda m: f"[{windows[m.group(1)]}]", rules)


def _query(url: str, expr: str, at: float) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    try:
        body = http_get_json(f"{url}/api/v1/query?{query}")
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{expr}: {exc.read().decode()}") from None
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _by(result: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for series in result:
        key = tuple(series["metric"].get(k, "") for k in keys)
        assert key not in out, f"two series for {key}: {result}"
        out[key] = float(series["value"][1])
    return out


def _per_sampling_second(expr: str, source: str) -> str:
    """`expr` (a rate) per second of the source's sampling time (see the module docstring)."""
    return f'({expr}) / scalar(rate({SOURCE_TIME}{{source="{source}"}}[{WINDOW}]))'


def _gauge(spec: Any) -> str:
    return f'{spec.name}{{window="{WINDOW}"}}'


_ENGINE = "engine:e0"
_RATE_FLOPS = f"rate(gpumetrics_engine_compute_flops_total[{WINDOW}])"
#: An engine's rate split evenly over its GPUs (count of its gpu_info series), summed by GPU.
_GPU_SHARE = (
    "sum without (engine, model) (({engine_rate}"
    " / on (instance, job, engine, model) count without (gpu, gpu_uuid)"
    " (gpumetrics_engine_gpu_info))"
    " * on (instance, job, engine, model) group_right gpumetrics_engine_gpu_info)"
)
_MEMORY = r.MEMORY_BYTES["5m"]

#: (what, PromQL expression, derived gauge, labels to match on).
CASES = [
    ("hit ratio", r.KV_HIT_RATIO["5m"], d.PREFIX_HIT_RATIO, ENGINE_KEYS),
    ("miss ratio", r.KV_MISS_RATIO["5m"], d.PREFIX_MISS_RATIO, ENGINE_KEYS),
    ("recompute share", r.RECOMPUTE_FLOPS_SHARE["5m"], d.RECOMPUTE_SHARE, ENGINE_KEYS),
    ("mean batch", r.MEAN_BATCH_SIZE["5m"], d.MEAN_BATCH, ENGINE_KEYS),
    ("batch occupancy", r.BATCH_OCCUPANCY_SEQUENCES["5m"], d.BATCH_OCCUPANCY, ENGINE_KEYS),
    ("token occupancy", r.BATCH_OCCUPANCY_TOKENS["5m"], d.BATCH_TOKEN_OCCUPANCY, ENGINE_KEYS),
    ("mean KV usage", r.KV_USAGE_AVG, d.KV_MEAN_USAGE, ENGINE_KEYS),
    ("load score", r.ENGINE_LOAD, d.LOAD_SCORE, ENGINE_KEYS),
    ("intensity", r.ARITHMETIC_INTENSITY["5m"], d.INTENSITY, ENGINE_KEYS),
    ("bound", r.COMPUTE_BOUND, d.COMPUTE_BOUND, DTYPE_KEYS),
    (
        "FLOP/s",
        _per_sampling_second(r.COMPUTE_FLOPS["5m"], _ENGINE),
        d.COMPUTE_RATE,
        ENGINE_KEYS,
    ),
    ("traffic", _per_sampling_second(_MEMORY, _ENGINE), d.MEMORY_TRAFFIC, ENGINE_KEYS),
    ("MFU", _per_sampling_second(r.MFU["5m"], _ENGINE), d.MFU, DTYPE_KEYS),
    ("MBU", _per_sampling_second(r.MBU["5m"], _ENGINE), d.MBU, ENGINE_KEYS),
    (
        "tokens/s",
        _per_sampling_second(f"rate(gpumetrics_engine_step_tokens_total[{WINDOW}])", _ENGINE),
        d.TOKEN_RATE,
        (*ENGINE_KEYS, "phase"),
    ),
    (
        "GPU MFU",
        _per_sampling_second(
            _GPU_SHARE.format(engine_rate=_RATE_FLOPS)
            + " / on (instance, job, gpu_uuid) group_right gpumetrics_gpu_peak_flops_per_second",
            _ENGINE,
        ),
        d.GPU_MFU,
        GPU_KEYS,
    ),
    (
        "GPU MBU",
        _per_sampling_second(
            _GPU_SHARE.format(engine_rate=_MEMORY) + " / on (instance, job, gpu_uuid) group_right"
            " gpumetrics_gpu_peak_memory_bandwidth_bytes_per_second",
            _ENGINE,
        ),
        d.GPU_MBU,
        ("gpu_uuid",),
    ),
    (
        "NVLink utilisation",
        _per_sampling_second(
            f"sum without (link, direction) (rate(gpumetrics_gpu_nvlink_data_bytes_total"
            f"[{WINDOW}])) / gpumetrics_gpu_peak_nvlink_bandwidth_bytes_per_second",
            "nvml",
        ),
        d.NVLINK_UTILIZATION,
        ("gpu_uuid",),
    ),
    (
        "IB utilisation",
        _per_sampling_second(
            f"rate(gpumetrics_ib_port_data_bytes_total[{WINDOW}]) / ignoring (direction)"
            " group_left gpumetrics_ib_port_rate_bytes_per_second",
            "infiniband",
        ),
        d.IB_UTILIZATION,
        PORT_KEYS,
    ),
]


def test_derived_gauges_agree_with_the_recording_rules(tmp_path: Path) -> None:
    rules = tmp_path / "recording.yml"
    rules.write_text(_compress((REPO / "alerts" / "gpumetrics-recording-rules.yml").read_text()))
    with (
        steady_engine() as engine_url,
        gpumetrics_serve(
            tmp_path,
            "--fake-gpus",
            "h200x2",
            "--fake-workload",
            "steady",
            "--fake-ib",
            "1",
            "--engine",
            f"e0={engine_url},kind=gpumetrics,gpus=0",
            "--interval",
            "0.25",
            "--derived-window",
            WINDOW,
        ) as port,  # fmt: skip
        prometheus(tmp_path / "prom", [f"127.0.0.1:{port}"], rule_files=[rules]) as prom,
    ):
        # Wait until every window is full: 35 s of rule evaluations over 30 s windows.
        wait_for(
            lambda: prom.query(f"count_over_time({r.KV_HIT_RATIO['5m']}[40s]) >= 36"),
            120,
            "35 s of recording-rule evaluations",
        )
        at = time.time() - 2.0  # evaluated and scraped by now
        results = {
            what: (
                _by(_query(prom.url, expr, at), keys),
                _by(_query(prom.url, _gauge(g), at), keys),
            )
            for what, expr, g, keys in CASES
        }
    for what, (rule, gauge) in results.items():
        worst = max((abs(gauge.get(k, 0) / v - 1) for k, v in rule.items() if v), default=0)
        print(f"{what}: {len(rule)} series, largest relative difference {worst:.2e}")
        assert rule, f"{what}: the rule side returned nothing"
        assert set(gauge) == set(rule), f"{what}: series differ: {sorted(rule)} vs {sorted(gauge)}"
        for key, expected in rule.items():
            assert gauge[key] == pytest.approx(expected, rel=0.01), f"{what} {key}"
    # Not a comparison of zeros: the scene's numbers (steady.py; an H200's peaks).
    assert results["hit ratio"][1][("e0", "steady")] == pytest.approx(0.3, rel=1e-3)
    assert results["MBU"][1][("e0", "steady")] == pytest.approx(1.844e12 / 4.8e12, rel=0.02)
    bound = results["bound"][1]
    assert bound[("e0", "steady", "bf16")] == 0.0  # 34.7 FLOP/B < ridge 206: memory-bound
    assert bound[("e0", "steady", "fp64")] == 1.0  # above an fp64 ridge of 7: compute-bound
