"""The replay-fixture loader on a trace made here: any tgz + phases pair in the format."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from .replay_fixture import Scrape, load_trace, median_of

SCRAPE = """\
# HELP gpumetrics_gpu_power_watts Power.
# TYPE gpumetrics_gpu_power_watts gauge
gpumetrics_gpu_power_watts{{gpu="0",gpu_uuid="GPU-a",gpu_model="NVIDIA H200"}} {power}
gpumetrics_gpu_power_watts{{gpu="1",gpu_uuid="GPU-b",gpu_model="NVIDIA H200"}} 1.0
"""


def _tgz(path: Path, members: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_loads_any_pair_in_time_order(tmp_path: Path) -> None:
    tgz = _tgz(
        tmp_path / "t.tgz",
        {
            "trace/s10000_105.5.prom": SCRAPE.format(power=300.0),
            "trace/s0001_100.5.prom": SCRAPE.format(power=100.0),
            "trace/s0002_101.prom": SCRAPE.format(power=200.0),
            "trace/serve.log": "ignored\n",
            "trace/phases.txt": "ignored\n",
        },
    )
    phases = tmp_path / "p.txt"
    phases.write_text("100 idle\n101 busy load=1\n106 end\n")
    trace = load_trace(tgz, phases)
    assert [(s.index, s.at) for s in trace.scrapes] == [(1, 100.5), (2, 101.0), (10000, 105.5)]
    assert [s.value("gpumetrics_gpu_power_watts", gpu="0") for s in trace.scrapes] == [
        100.0,
        200.0,
        300.0,
    ]
    assert [s.index for s in trace.in_phase("busy")] == [2, 10000]
    assert [s.index for s in trace.in_phase("busy", settle=1.0)] == [10000]
    assert trace.in_phase("busy", tail=0.6) == [trace.scrapes[1]]
    with pytest.raises(KeyError, match="2 samples"):
        trace.scrapes[0].value("gpumetrics_gpu_power_watts")


def test_a_tgz_without_scrapes_is_an_error(tmp_path: Path) -> None:
    tgz = _tgz(tmp_path / "t.tgz", {"trace/readme.txt": "x"})
    phases = tmp_path / "p.txt"
    phases.write_text("1 idle\n2 end\n")
    with pytest.raises(ValueError, match=r"no trace/sNNNN_<epoch>\.prom"):
        load_trace(tgz, phases)


DATA = Path(__file__).resolve().parents[1] / "data" / "h200"


def _gpu0(name: str) -> Callable[[Scrape], float]:
    return lambda scrape: scrape.value(f"gpumetrics_gpu_{name}", gpu="0")


@pytest.mark.parametrize("stem", ["trace", "trace-2"])
def test_both_h200_recordings_show_busy_is_not_useful(stem: str) -> None:
    """Two H200 recordings (the manual one and scripts/gpu-check's, tests/data/h200/README.md)
    load in the fixture format and show the product's claim each time: naive utilization near
    1 in both the matmul and the copy phase, while GPM tells them apart (tensor vs DRAM), and
    a storm of tiny kernels reads 'busy' while the SMs are idle."""
    trace = load_trace(DATA / f"{stem}.tgz", DATA / f"{stem}-phases.txt")
    naive, sm = _gpu0("utilization_naive_ratio"), _gpu0("sm_active_ratio")
    tensor, dram = _gpu0("tensor_active_ratio"), _gpu0("dram_active_ratio")
    gemm = trace.in_phase("gemm", settle=1.0, tail=0.5)
    copy = trace.in_phase("copy", settle=1.0, tail=0.5)
    storm = trace.in_phase("tiny_kernels", settle=1.0, tail=0.5)
    assert min(len(gemm), len(copy), len(storm)) >= 10
    assert median_of(gemm, naive) >= 0.95
    assert median_of(copy, naive) >= 0.95
    assert median_of(gemm, tensor) > 0.9
    assert median_of(gemm, dram) < 0.2
    assert median_of(copy, dram) > 0.85
    assert median_of(copy, tensor) < 1e-3
    assert median_of(storm, naive) > 0.15
    assert median_of(storm, sm) < 1e-3
