"""Derived gauges against values computed by hand from the recording rules' definitions.

The scene: engine "e0" (model "m") on two GPUs. GPU-a has bf16 1e15, fp8 3e15 and fp32 5e13
FLOP/s peaks; GPU-b has bf16 1e15 and fp32 5e13 (no fp8); both 5e12 B/s of HBM and 8e10 B/s
of NVLink. Over 10 s the engine does 1e16 FLOPs (1e15 of them recomputing), reads 6e13 and
writes 2e13 bytes, runs 20 prefill + 80 decode steps over 800 sequences and 20,000 prefill +
800 decode tokens, and looks up 1,000 prompt tokens of which 250 hit.
"""

from __future__ import annotations

import pytest

from gpumetrics.catalog import derived as d
from gpumetrics.catalog import engine as e
from gpumetrics.catalog import gpu as g
from gpumetrics.catalog import network as n
from gpumetrics.derive import DerivedGauges
from gpumetrics.samples import HistogramValue, Sample
from gpumetrics.testing.sample_values import scalar_values

E = ("e0", "m")
A = ("0", "GPU-a", "NVIDIA H100")
B = ("1", "GPU-b", "NVIDIA H100")
IB = ("mlx5_0", "1")


def _engine(t: float, *, write: bool = True, gpus: bool = True) -> list[Sample]:
    """The engine's counters at t = 0 (all zero) or t = 10 s (the totals above)."""
    k = t / 10
    samples = [
        e.PREFIX_QUERIED.sample(1000 * k, *E),
        e.PREFIX_HIT.sample(250 * k, *E),
        e.FLOPS.sample(1e16 * k, *E),
        e.RECOMPUTED_FLOPS.sample(1e15 * k, *E),
        e.READ_BYTES.sample(6e13 * k, *E),
        e.STEPS.sample(20 * k, *E, "prefill"),
        e.STEPS.sample(80 * k, *E, "decode"),
        e.STEPS.sample(0, *E, "mixed"),
        e.STEP_SEQUENCES.sample(800 * k, *E),
        e.STEP_TOKENS.sample(20000 * k, *E, "prefill"),
        e.STEP_TOKENS.sample(800 * k, *E, "decode"),
        e.MAX_BATCH_SEQUENCES.sample(32, *E),
        e.MAX_BATCH_TOKENS.sample(512, *E),
        e.KV_USAGE.sample(0.5 + 0.2 * k, *E),
        e.STEP_DURATION.sample(HistogramValue((0.1,), (1.0,), 0.05, 1.0), *E),
    ]
    if write:
        samples.append(e.WRITE_BYTES.sample(2e13 * k, *E))
    if gpus:
        samples += [
            e.ENGINE_GPU_INFO.sample(1, *E, "0", "GPU-a"),
            e.ENGINE_GPU_INFO.sample(1, *E, "1", "GPU-b"),
        ]
    return samples


def _gpus(t: float) -> list[Sample]:
    k = t / 10
    samples = [
        g.PEAK_FLOPS.sample(1e15, *A, "bf16"),
        g.PEAK_FLOPS.sample(3e15, *A, "fp8"),
        g.PEAK_FLOPS.sample(5e13, *A, "fp32"),
        g.PEAK_FLOPS.sample(1e15, *B, "bf16"),
        g.PEAK_FLOPS.sample(5e13, *B, "fp32"),
        g.PEAK_MEMORY_BANDWIDTH.sample(5e12, *A),
        g.PEAK_MEMORY_BANDWIDTH.sample(5e12, *B),
        g.PEAK_NVLINK_BANDWIDTH.sample(8e10, *A),
        g.PEAK_NVLINK_BANDWIDTH.sample(8e10, *B),
        g.GPU_POWER.sample(500, *A),
    ]
    # GPU-a: 2 links x 2 directions, 1e11 bytes each over 10 s = 4e10 B/s; GPU-b idle. The
    # per-GPU family carries each direction summed over the links.
    for direction in ("tx", "rx"):
        samples.append(g.NVLINK_DATA_BYTES.sample(2 * 1e11 * k, *A, direction))
        samples.append(g.NVLINK_DATA_BYTES.sample(0.0, *B, direction))
    return samples


def _fabric(t: float) -> list[Sample]:
    k = t / 10
    return [
        n.IB_DATA_BYTES.sample(2.5e11 * k, *IB, "tx"),
        n.IB_DATA_BYTES.sample(1e11 * k, *IB, "rx"),
        n.IB_RATE.sample(5e10, *IB),
    ]


def _values(gauges: DerivedGauges) -> dict[tuple[str, tuple[str, ...]], float]:
    return scalar_values(gauges.samples())


def _scene(**engine: bool) -> DerivedGauges:
    gauges = DerivedGauges(60)
    for t in (0.0, 10.0):
        gauges.observe("engine:e0", 1000 + t, _engine(t, **engine))
        gauges.observe("nvml", 1000.3 + t, _gpus(t))
        gauges.observe("infiniband", 1000.6 + t, _fabric(t))
    return gauges


def test_engine_gauges_by_hand() -> None:
    got = _values(_scene())
    w = "1m"
    expected = {
        (d.PREFIX_HIT_RATIO, (*E, w)): 250 / 1000,
        (d.PREFIX_MISS_RATIO, (*E, w)): 750 / 1000,
        (d.RECOMPUTE_SHARE, (*E, w)): 0.1,
        (d.MEAN_BATCH, (*E, w)): 800 / 100,
        (d.BATCH_OCCUPANCY, (*E, w)): 8 / 32,
        (d.BATCH_TOKEN_OCCUPANCY, (*E, w)): 20800 / 100 / 512,
        (d.KV_MEAN_USAGE, (*E, w)): 0.6,
        # max(batch occupancy 0.25, mean KV usage (0.5 + 0.7) / 2)
        (d.LOAD_SCORE, (*E, w)): 0.6,
        (d.TOKEN_RATE, (*E, "prefill", w)): 2000.0,
        (d.TOKEN_RATE, (*E, "decode", w)): 80.0,
        (d.COMPUTE_RATE, (*E, w)): 1e15,
        (d.MEMORY_TRAFFIC, (*E, w)): 8e12,
        (d.INTENSITY, (*E, w)): 125.0,
        # MFU: 1e15 over the summed peaks of the GPUs that have the dtype.
        (d.MFU, (*E, "fp8", w)): 1e15 / 3e15,
        (d.MFU, (*E, "bf16", w)): 1e15 / 2e15,
        (d.MFU, (*E, "fp32", w)): 1e15 / 1e14,
        (d.MBU, (*E, w)): 8e12 / 1e13,
        # Ridge: fp8 3e15 / 1e13 = 300, bf16 200, fp32 10; intensity 125.
        (d.COMPUTE_BOUND, (*E, "fp8", w)): 0.0,
        (d.COMPUTE_BOUND, (*E, "bf16", w)): 0.0,
        (d.COMPUTE_BOUND, (*E, "fp32", w)): 1.0,
    }
    for (spec, labels), value in expected.items():
        assert got.pop((spec.name, labels)) == pytest.approx(value, rel=1e-12), spec.name
    assert {name for name, _ in got} <= {s.name for s in (*d.GPU_DERIVED, *d.NETWORK_DERIVED)}


def test_gpu_and_fabric_gauges_by_hand() -> None:
    got = _values(_scene())
    w = "1m"
    expected = {
        # The engine's 1e15 FLOP/s and 8e12 B/s split evenly over its two GPUs.
        (d.GPU_MFU, (*A, "fp8", w)): 5e14 / 3e15,
        (d.GPU_MFU, (*A, "bf16", w)): 5e14 / 1e15,
        (d.GPU_MFU, (*A, "fp32", w)): 5e14 / 5e13,
        (d.GPU_MFU, (*B, "bf16", w)): 0.5,
        (d.GPU_MFU, (*B, "fp32", w)): 10.0,
        (d.GPU_MBU, (*A, w)): 4e12 / 5e12,
        (d.GPU_MBU, (*B, w)): 4e12 / 5e12,
        (d.NVLINK_UTILIZATION, (*A, w)): 4e10 / 8e10,
        (d.NVLINK_UTILIZATION, (*B, w)): 0.0,
        (d.IB_UTILIZATION, (*IB, "tx", w)): 2.5e10 / 5e10,
        (d.IB_UTILIZATION, (*IB, "rx", w)): 1e10 / 5e10,
    }
    for (spec, labels), value in expected.items():
        assert got[(spec.name, labels)] == pytest.approx(value, rel=1e-12), spec.name
    per_gpu = {k for k in got if k[0] in {s.name for s in (*d.GPU_DERIVED, *d.NETWORK_DERIVED)}}
    assert per_gpu == {(spec.name, labels) for spec, labels in expected}


def test_every_gauge_is_in_the_catalog_with_the_configured_window() -> None:
    gauges = _scene()
    assert gauges.window == "1m"
    for sample in gauges.samples():
        spec = next(s for s in d.ALL if s.name == sample.metric)
        assert len(sample.labels) == len(spec.labels)
        assert sample.labels[spec.labels.index("window")] == "1m"


def test_read_alone_without_a_write_counter() -> None:
    got = _values(_scene(write=False))
    assert got[(d.MEMORY_TRAFFIC.name, (*E, "1m"))] == pytest.approx(6e12)
    assert got[(d.INTENSITY.name, (*E, "1m"))] == pytest.approx(1e15 / 6e12)
    assert got[(d.MBU.name, (*E, "1m"))] == pytest.approx(6e12 / 1e13)


def test_no_gpus_declared_no_utilization() -> None:
    """Without gpumetrics_engine_gpu_info nothing joins the peaks (the rules give nothing
    either): intensity and rates stay, MFU, MBU, the bound and per-GPU shares go."""
    names = {name for name, _ in _values(_scene(gpus=False))}
    assert d.INTENSITY.name in names
    assert d.COMPUTE_RATE.name in names
    for spec in (d.MFU, d.MBU, d.COMPUTE_BOUND, d.GPU_MFU, d.GPU_MBU):
        assert spec.name not in names
    assert d.NVLINK_UTILIZATION.name in names  # the fabric needs no engine


def test_counter_reset_inside_the_window() -> None:
    """An engine restart: queried 1000 -> 1500 -> 200 and hit 400 -> 500 -> 100. Increases:
    queried 500 + 200, hit 100 + 100 (after a reset the new value is the increase)."""
    gauges = DerivedGauges(30)
    for t, queried, hit in ((0.0, 1000, 400), (5.0, 1500, 500), (10.0, 200, 100)):
        gauges.observe(
            "engine:e0",
            t,
            [e.PREFIX_QUERIED.sample(queried, *E), e.PREFIX_HIT.sample(hit, *E)],
        )
    got = _values(gauges)
    assert got[(d.PREFIX_HIT_RATIO.name, (*E, "30s"))] == pytest.approx(200 / 700)


def test_the_window_slides() -> None:
    """Over 30 s the hit ratio forgets an early all-miss stretch."""
    gauges = DerivedGauges(30)
    hits = 0.0
    for t in range(0, 61, 5):
        hits += 0 if t <= 20 else 50
        gauges.observe(
            "engine:e0",
            float(t),
            [e.PREFIX_QUERIED.sample(100.0 * t, *E), e.PREFIX_HIT.sample(hits, *E)],
        )
    # Window [30, 60]: queried 3000, hits 6 x 50 = 300.
    assert _values(gauges)[(d.PREFIX_HIT_RATIO.name, (*E, "30s"))] == pytest.approx(0.1)


def test_nothing_from_one_cycle_a_zero_denominator_or_a_forgotten_source() -> None:
    gauges = DerivedGauges(60)
    gauges.observe("engine:e0", 0.0, _engine(0.0))
    # One cycle: no rate yet; the mean KV usage and the load score are that one sample, as
    # the rules' avg_over_time over one sample gives them.
    assert gauges.samples() == (
        d.KV_MEAN_USAGE.sample(0.5, *E, "1m"),
        d.LOAD_SCORE.sample(0.5, *E, "1m"),
    )
    idle = [e.PREFIX_QUERIED.sample(5.0, *E), e.PREFIX_HIT.sample(5.0, *E)]
    gauges = DerivedGauges(60)
    gauges.observe("engine:e0", 0.0, idle)
    gauges.observe("engine:e0", 10.0, idle)
    assert d.PREFIX_HIT_RATIO.name not in {s.metric for s in gauges.samples()}
    scene = _scene()
    scene.forget("engine:e0")
    names = {s.metric for s in scene.samples()}
    assert names == {d.NVLINK_UTILIZATION.name, d.IB_UTILIZATION.name}


def test_a_series_gone_from_a_cycle_is_forgotten() -> None:
    gauges = _scene()
    gauges.observe("infiniband", 1030.0, [n.IB_RATE.sample(5e10, *IB)])
    assert d.IB_UTILIZATION.name not in {s.metric for s in gauges.samples()}


def test_two_engines_share_a_gpu() -> None:
    """Per GPU the engines' shares add up: e1 on GPU-a alone adds its whole rate there."""
    gauges = _scene()
    other = ("e1", "m")
    for t in (0.0, 10.0):
        gauges.observe(
            "engine:e1",
            1000 + t,
            [
                e.FLOPS.sample(2e15 * t / 10, *other),
                e.READ_BYTES.sample(1e13 * t / 10, *other),
                e.ENGINE_GPU_INFO.sample(1, *other, "0", "GPU-a"),
            ],
        )
    got = _values(gauges)
    assert got[(d.GPU_MFU.name, (*A, "bf16", "1m"))] == pytest.approx((5e14 + 2e14) / 1e15)
    assert got[(d.GPU_MBU.name, (*A, "1m"))] == pytest.approx((4e12 + 1e12) / 5e12)
    assert got[(d.MFU.name, (*other, "bf16", "1m"))] == pytest.approx(0.2)


def test_spec_decode_and_external_cache_ratios_match_the_promtool_cases() -> None:
    """alerts/tests/spec-and-external-kv.yml, engine e1, over one minute: 600 draft tokens,
    390 accepted (0.65); 12000 tokens looked up in the external store, 3000 found (0.25).
    An engine whose counters stay flat gets neither ratio (0/0)."""
    gauges = DerivedGauges(300)
    idle = ("e3", "m")
    for t, k in ((0.0, 0.0), (60.0, 1.0)):
        gauges.observe(
            "engine:e1",
            t,
            [
                e.SPEC_DRAFT_TOKENS.sample(600 * k, *E),
                e.SPEC_ACCEPTED_TOKENS.sample(390 * k, *E),
                e.EXTERNAL_PREFIX_QUERIED.sample(12000 * k, *E),
                e.EXTERNAL_PREFIX_HIT.sample(3000 * k, *E),
            ],
        )
        gauges.observe(
            "engine:e3",
            t,
            [e.SPEC_DRAFT_TOKENS.sample(900, *idle), e.SPEC_ACCEPTED_TOKENS.sample(500, *idle)],
        )
    got = _values(gauges)
    assert got[(d.SPEC_ACCEPTANCE_RATIO.name, (*E, "5m"))] == pytest.approx(0.65)
    assert got[(d.EXTERNAL_HIT_RATIO.name, (*E, "5m"))] == pytest.approx(0.25)
    assert not {key for key in got if key[1][:2] == idle}
