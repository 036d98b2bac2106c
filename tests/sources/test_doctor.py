"""group_checks: doctor's per-GPU findings folded into one row per distinct check."""

from __future__ import annotations

import pytest

from gpumetrics.samples import Check
from gpumetrics.sources.doctor import group_checks, index_span
from gpumetrics.sources.nvml_doctor import probe_nvml
from gpumetrics.testing import FakeNvml, parse_fake_gpus


@pytest.mark.parametrize(
    ("indexes", "text"),
    [([3], "3"), ([0, 1], "0, 1"), ([0, 1, 2, 3, 5], "0-3, 5"), ([7, 0, 6, 1, 5], "0, 1, 5-7")],
)
def test_index_span(indexes: list[int], text: str) -> None:
    assert index_span(indexes) == text


def test_eight_identical_gpus_fold_into_one_row_per_check() -> None:
    with FakeNvml(parse_fake_gpus("h200x8")):
        checks = probe_nvml()
    per_gpu = [c for c in checks if c.area.startswith("gpu ")]
    names = list(dict.fromkeys(c.name for c in per_gpu))
    assert len(per_gpu) == 8 * len(names)
    grouped = group_checks(checks)
    folded = [c for c in grouped if c.area.startswith("gpu")]
    assert [c.name for c in folded] == names  # one row each, in probe order
    assert {c.area for c in folded} == {"gpus 0-7"}
    device = next(c for c in folded if c.name == "device")
    assert device.detail == "NVIDIA H200"  # the UUIDs stay in --json
    assert [c for c in grouped if c.area == "node"] == [c for c in checks if c.area == "node"]


def test_a_gpu_that_differs_keeps_its_own_row() -> None:
    with FakeNvml(parse_fake_gpus("h100x4")) as fake:
        fake.lose_gpu(2)
        grouped = group_checks(probe_nvml())
    lost = [c for c in grouped if c.area == "gpu 2"]
    assert [c.status for c in lost] == ["fail"]
    assert all(c.area == "gpus 0, 1, 3" for c in grouped if c.name == "NVLink")


def test_non_gpu_checks_pass_through() -> None:
    checks = [
        Check("ib mlx5_0", "port 1", "ok", "InfiniBand, ACTIVE"),
        Check("node", "x", "ok", ""),
    ]
    assert group_checks(checks) == checks
