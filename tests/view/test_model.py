"""The view model reads serve's series as they are: each cell is one series, found by its
labels; only tokens/s sums phases, and MFU and the bound are read for the chosen dtype."""

from __future__ import annotations

from gpumetrics.catalog import derived as d
from gpumetrics.catalog import engine as e
from gpumetrics.catalog import gpu as g
from gpumetrics.catalog import health as h
from gpumetrics.catalog import network as n
from gpumetrics.samples import HistogramValue, Snapshot
from gpumetrics.view import EngineRow, GpuRow, Point, PortRow, build_view, points_of

GPU0 = ("0", "GPU-a", "NVIDIA H200")
GPU1 = ("1", "GPU-b", "NVIDIA H200")
MIG = ("0/mig-3", "MIG-x", "NVIDIA H200")
ENGINE = ("vllm-0", "llama")


def _snapshot() -> Snapshot:
    samples = [
        g.GPU_UP.sample(1, *GPU0),
        g.GPU_UP.sample(1, *GPU1),
        g.GPU_UP.sample(1, *MIG),
        g.GPU_UTILIZATION_NAIVE.sample(1.0, *GPU0),
        g.GPM_SM_ACTIVE.sample(0.85, *GPU0),
        g.GPM_TENSOR_ACTIVE.sample(0.22, *GPU0),
        g.GPM_DRAM_ACTIVE.sample(0.81, *GPU0),
        g.GPU_POWER.sample(540.0, *GPU0),
        g.GPU_MEMORY_USED.sample(100 * 2**30, *GPU0),
        g.GPU_MEMORY_TOTAL.sample(140 * 2**30, *GPU0),
        d.GPU_MFU.sample(0.31, *GPU0, "bf16", "5m"),
        d.GPU_MFU.sample(0.155, *GPU0, "fp8", "5m"),
        d.GPU_MBU.sample(0.62, *GPU0, "5m"),
        d.NVLINK_UTILIZATION.sample(0.387, *GPU0, "5m"),
        e.ENGINE_INFO.sample(1, *ENGINE, "vllm"),
        e.KV_USAGE.sample(0.99, *ENGINE),
        e.PREEMPTIONS.sample(66.0, *ENGINE),
        e.WAITING_REQUESTS.sample(3.0, *ENGINE),
        e.STEP_DURATION.sample(HistogramValue((0.1,), (1.0,), 0.05, 1.0), *ENGINE),
        d.KV_MEAN_USAGE.sample(0.7, *ENGINE, "5m"),
        d.BATCH_OCCUPANCY.sample(0.4, *ENGINE, "5m"),
        d.PREFIX_HIT_RATIO.sample(0.3, *ENGINE, "5m"),
        d.RECOMPUTE_SHARE.sample(0.06, *ENGINE, "5m"),
        d.TOKEN_RATE.sample(2000.0, *ENGINE, "prefill", "5m"),
        d.TOKEN_RATE.sample(80.0, *ENGINE, "decode", "5m"),
        d.INTENSITY.sample(34.7, *ENGINE, "5m"),
        d.COMPUTE_BOUND.sample(0.0, *ENGINE, "bf16", "5m"),
        d.COMPUTE_BOUND.sample(1.0, *ENGINE, "fp64", "5m"),
        d.MFU.sample(0.065, *ENGINE, "bf16", "5m"),
        d.MFU.sample(0.5, *ENGINE, "fp64", "5m"),
        d.MBU.sample(0.384, *ENGINE, "5m"),
        d.LOAD_SCORE.sample(0.7, *ENGINE, "5m"),
        n.IB_STATE.sample(1, "mlx5_0", "1"),
        h.SOURCE_UP.sample(1.0, "nvml"),
        h.SOURCE_UP.sample(0.0, "engine:vllm-1"),
        d.IB_UTILIZATION.sample(0.4, "mlx5_0", "1", "tx", "5m"),
    ]
    return Snapshot(0.0, tuple(samples))


def test_rows_by_hand() -> None:
    view = build_view(points_of(_snapshot()), source="test")
    assert view.window == "5m"
    assert view.dtype == "bf16"
    assert view.gpus == (
        GpuRow("0", "NVIDIA H200", 1.0, 0.85, 0.22, 0.81, 0.31, 0.62, 0.387, 540.0,
               100 * 2**30, 140 * 2**30),
        GpuRow("1", "NVIDIA H200", *([None] * 10)),
    )  # fmt: skip
    assert view.engines == (
        EngineRow("vllm-0", "llama", 0.4, 0.7, 0.3, 0.06, 66.0, 3.0, 2080.0, 34.7, 0.0,
                  0.065, 0.384, 0.7),
    )  # fmt: skip
    assert view.ports == (PortRow("mlx5_0/1", 0.4, None),)
    assert view.down == ("engine:vllm-1",)
    assert view.error is None


def test_dtype_picks_mfu_and_bound() -> None:
    view = build_view(points_of(_snapshot()), source="test", dtype="fp64")
    (engine,) = view.engines
    assert (engine.mfu, engine.compute_bound) == (0.5, 1.0)
    assert view.gpus[0].mfu is None  # the GPU has no fp64 series here
    assert build_view(points_of(_snapshot()), source="t", dtype="fp8").gpus[0].mfu == 0.155


def test_points_from_a_scrape_read_the_same() -> None:
    """Points as a text scrape names them (counters with _total, labels by name) give the
    same view as the Snapshot they were rendered from."""
    points = points_of(_snapshot())
    assert Point(e.PREEMPTIONS.name, {"engine": "vllm-0", "model": "llama"}, 66.0) in points
    shuffled = list(reversed(points))
    assert build_view(shuffled, source="test") == build_view(points, source="test")


def test_nothing_reported() -> None:
    view = build_view([], source="empty")
    assert (view.gpus, view.engines, view.ports, view.window) == ((), (), (), None)


def test_gpus_sort_numerically() -> None:
    points = [Point(g.GPU_UP.name, {"gpu": str(i), "gpu_model": "X"}, 1.0) for i in (10, 2, 1)]
    assert [row.gpu for row in build_view(points, source="t").gpus] == ["1", "2", "10"]
