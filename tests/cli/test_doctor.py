"""`gpumetrics doctor` on no driver, on fake GPU profiles with faults, and on fake IB trees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpumetrics.cli import cli
from gpumetrics.sources.ib_doctor import probe_infiniband
from gpumetrics.sources.nvml_doctor import probe_nvml
from gpumetrics.testing import FakeNvml, parse_fake_gpus
from gpumetrics.testing.sysfs import CounterSet, FakeInfinibandTree, LinkLayer


def _doctor(*args: str) -> tuple[int, list[dict[str, str]]]:
    result = CliRunner().invoke(cli, ["doctor", "--json", *args])
    return result.exit_code, json.loads(result.stdout)["checks"]


def _find(checks: list[dict[str, str]], area: str, name: str) -> dict[str, str]:
    return next(c for c in checks if c["area"] == area and c["name"] == name)


def test_no_driver_fails_with_a_hint(tmp_path: Path) -> None:
    with FakeNvml(parse_fake_gpus("a100"), library_missing=True):
        code, checks = _doctor("--ib-root", str(tmp_path / "none"))
    assert code == 1
    nvml = _find(checks, "node", "NVML")
    assert nvml["status"] == "fail"
    assert "--fake-gpus" in nvml["hint"]
    assert _find(checks, "node", "InfiniBand")["status"] == "skip"


def test_h200_node_is_all_green(tmp_path: Path) -> None:
    code, checks = _doctor("--fake-gpus", "h200x8", "--ib-root", str(tmp_path / "none"))
    assert code == 0
    assert _find(checks, "node", "GPUs")["detail"] == "8 visible"
    for gpu in range(8):
        assert _find(checks, f"gpu {gpu}", "GPM profiling")["status"] == "ok"
        assert _find(checks, f"gpu {gpu}", "NVLink")["detail"] == "18 of 18 links active"
        assert "h200" in _find(checks, f"gpu {gpu}", "peaks")["detail"]


def test_a100_has_no_gpm_and_minimal_degrades() -> None:
    with FakeNvml(parse_fake_gpus("a100")):
        checks = probe_nvml()
    gpm = next(c for c in checks if c.name == "GPM profiling")
    assert gpm.status == "skip"
    assert "Hopper" in gpm.hint
    with FakeNvml(parse_fake_gpus("minimal")) as fake:
        fake.not_supported(191)  # NVML_FI_DEV_ENERGY
        statuses = {c.name: c.status for c in probe_nvml() if c.area == "gpu 0"}
    assert statuses["peaks"] == "warn"  # a Tesla T4 is not in the spec table
    assert statuses["GPM profiling"] == "skip"
    assert statuses["NVLink"] == "skip"
    assert statuses["energy counter"] == "warn"


def test_gpm_without_permission_says_how_to_fix_it() -> None:
    with FakeNvml(parse_fake_gpus("h100x1")) as fake:
        fake.gpm_no_permission()
        gpm = next(c for c in probe_nvml() if c.name == "GPM profiling")
    assert gpm.status == "warn"
    assert "CAP_SYS_ADMIN" in gpm.hint


def test_lost_gpu_is_a_failure() -> None:
    with FakeNvml(parse_fake_gpus("h100x2")) as fake:
        fake.lose_gpu(1)
        checks = probe_nvml()
    assert any(c.area == "gpu 1" and c.status == "fail" for c in checks)


@pytest.mark.parametrize(
    ("counter_set", "link_layer", "expect"),
    [
        (CounterSet.EXTENDED, LinkLayer.INFINIBAND, "64-bit counters"),
        (CounterSet.PMA, LinkLayer.INFINIBAND, "32-bit PMA counters"),
        (CounterSet.EXTENDED, LinkLayer.ETHERNET, "RoCE congestion counters"),
    ],
)
def test_infiniband_ports(
    tmp_path: Path, counter_set: CounterSet, link_layer: LinkLayer, expect: str
) -> None:
    tree = FakeInfinibandTree(tmp_path)
    tree.add_port("mlx5_0", 1, counter_set=counter_set, link_layer=link_layer)
    (check,) = probe_infiniband(tmp_path)
    assert check.status == "ok"
    assert expect in check.detail
    assert "400 Gb/s" in check.detail


def test_infiniband_port_without_counters_or_down(tmp_path: Path) -> None:
    tree = FakeInfinibandTree(tmp_path)
    tree.add_port("mlx5_0", 1, counter_set=CounterSet.NO_PMA)
    tree.add_port("mlx5_1", 1, state=1, phys_state=3)
    checks = {c.area: c for c in probe_infiniband(tmp_path)}
    assert checks["ib mlx5_0"].status == "warn"
    assert "not readable" in checks["ib mlx5_0"].detail
    assert checks["ib mlx5_1"].status == "warn"
    assert checks["ib mlx5_1"].hint == "port is not ACTIVE"


def test_the_table_has_one_row_per_distinct_check(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["doctor", "--fake-gpus", "h200x8", "--ib-root", str(tmp_path / "none")]
    )
    assert result.exit_code == 0
    assert result.stdout.count("GPM profiling") == 1
    assert result.stdout.count("gpus 0-7") == 7  # device, peaks, GPM, NVLink, energy, util, XID
    assert "GPU-" not in result.stdout  # UUIDs are in --json
