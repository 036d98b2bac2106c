"""The replay-fixture loader on a trace made here: any tgz + phases pair in the format."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from .replay_fixture import load_trace

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
