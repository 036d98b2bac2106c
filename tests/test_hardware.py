"""The GPU spec table, NVML name matching, overrides and spec files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gpumetrics.errors import ConfigError, UnknownGpuError
from gpumetrics.hardware import (
    GPUS,
    GpuSpec,
    find_gpu,
    load_gpu_spec,
    match_nvml_name,
    with_overrides,
)
from gpumetrics.testing.fakenvml.profiles import A100, H100, H200, DeviceSpec

GIB = 2**30
MIB = 2**20


@pytest.mark.parametrize("key", sorted(GPUS))
def test_every_row_is_sourced_and_positive(key: str) -> None:
    spec = GPUS[key]
    assert spec.key == key
    assert spec.name.strip()
    assert spec.source.strip()
    assert spec.peak_flops
    assert all(v > 0 for v in spec.peak_flops.values())
    assert spec.hbm_bandwidth > 0
    assert spec.memory_bytes > 0
    assert spec.nvlink_bandwidth >= 0
    assert spec.nvlink_links >= 0
    assert (spec.nvlink_links == 0) == (spec.nvlink_bandwidth == 0)
    assert spec.memory_bytes % MIB == 0  # NVML's total as nvidia-smi prints it, in MiB
    assert spec.memory_source.startswith("NVML total")
    assert f"{spec.memory_bytes / MIB:,.0f} MiB" in spec.memory_source
    assert "bf16" in spec.peak_flops
    # Dense, not sparse: FP8 (where present) is twice BF16, FP16 equals BF16. (The L40S
    # datasheet's own dense figures are 362.05 and 733 TFLOP/s, a ratio of 2.02.)
    if "fp8" in spec.peak_flops:
        assert spec.peak("fp8") == pytest.approx(2 * spec.peak("bf16"), rel=0.02)
    assert spec.peak("fp16") == spec.peak("bf16")
    assert spec.ridge("bf16") == pytest.approx(spec.peak("bf16") / spec.hbm_bandwidth)
    # No GPU in the table reaches 3 PFLOP/s dense bf16 (the sparse B200 figure is 4.5).
    assert spec.peak("bf16") < 3e15


def test_h100_sxm_dense_figures() -> None:
    h100 = GPUS["h100-sxm"]
    assert h100.peak("bf16") == 989.4e12
    assert h100.peak("fp8") == 1978.9e12
    assert h100.peak("bf16") != 1979e12  # the 2:4-sparse datasheet figure
    assert h100.hbm_bandwidth == 3.35e12
    assert h100.memory_bytes == 81559 * MIB  # nvidia-smi: "0MiB / 81559MiB"
    assert h100.memory_bytes == 85_520_809_984
    assert h100.nvlink_bandwidth == 900e9
    assert h100.nvlink_links == 18


def test_h200_and_a100_rows() -> None:
    h200 = GPUS["h200"]
    assert h200.peak("bf16") == 989.4e12
    assert h200.peak("fp8") == 1978.9e12
    assert h200.hbm_bandwidth == 4.8e12
    # Real H200 SXM (shared/h200-reference/nvidia-smi-q.txt: FB Memory Total 143771 MiB;
    # pynvml nvmlDeviceGetMemoryInfo total 150,754,820,096 bytes).
    assert h200.memory_bytes == 150_754_820_096
    a100 = GPUS["a100-80gb"]
    assert a100.peak("bf16") == 312e12
    assert a100.hbm_bandwidth == 2.039e12
    assert a100.memory_bytes == 81920 * MIB
    assert a100.nvlink_bandwidth == 600e9
    assert a100.nvlink_links == 12


@pytest.mark.parametrize("profile", [H100, H200, A100], ids=lambda p: p.name)
def test_table_memory_agrees_with_fake_nvml_profiles(profile: DeviceSpec) -> None:
    """The FakeNvml device profiles were written from real devices' NVML reads, separately
    from the table: the row NVML's device name matches must carry the same total."""
    row = match_nvml_name(profile.name)
    assert row is not None
    assert row.memory_bytes == profile.memory_bytes


def test_memory_override_says_so() -> None:
    spec = with_overrides(GPUS["h200"], memory_bytes=100e9)
    assert spec.memory_bytes == 100e9
    assert spec.memory_source == "user override"
    assert with_overrides(GPUS["h200"], hbm_bandwidth=1e12).memory_source.startswith("NVML")


def test_peak_of_missing_dtype_is_keyerror() -> None:
    with pytest.raises(KeyError, match="bf16"):
        GPUS["a100-80gb"].peak("fp8")  # Ampere has no FP8 tensor cores


@pytest.mark.parametrize(
    ("nvml_name", "key"),
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA H200 NVL", "h200-nvl"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H100 NVL", "h100-nvl"),
        ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA A100 80GB PCIe", "a100-80gb-pcie"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA B200", "b200"),
        ("NVIDIA GB200", "gb200"),
        # MIG slices report their parent's name with a profile suffix.
        ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", "h100-sxm"),
        ("NVIDIA H100 80GB HBM3 MIG 7g.80gb", "h100-sxm"),
        ("NVIDIA H200 MIG 1g.18gb", "h200"),
        ("NVIDIA A100-SXM4-40GB MIG 1g.5gb", "a100-40gb"),
        ("NVIDIA A100-SXM4-80GB MIG 3g.40gb", "a100-80gb"),
        ("NVIDIA A100 80GB PCIe MIG 2g.20gb", "a100-80gb-pcie"),
        # An 80 GB A100's half-GPU profiles are named "3g.40gb" / "4g.40gb": the parent's
        # "80GB" decides, not the slice's memory.
        ("NVIDIA A100-SXM4-80GB MIG 4g.40gb", "a100-80gb"),
        ("NVIDIA A100 80GB PCIe MIG 3g.40gb", "a100-80gb-pcie"),
    ],
)
def test_nvml_names(nvml_name: str, key: str) -> None:
    spec = match_nvml_name(nvml_name)
    assert spec is not None, nvml_name
    assert spec.key == key
    assert find_gpu(nvml_name).key == key


@pytest.mark.parametrize(
    "nvml_name",
    ["Tesla T4", "NVIDIA GeForce RTX 4090", "NVIDIA A10G", "Tesla V100-SXM2-16GB", ""],
)
def test_unknown_nvml_names(nvml_name: str) -> None:
    assert match_nvml_name(nvml_name) is None


@pytest.mark.parametrize("key", sorted(GPUS))
def test_find_gpu_by_key(key: str) -> None:
    assert find_gpu(key) is GPUS[key]


def test_find_gpu_unknown_lists_keys_and_override() -> None:
    with pytest.raises(UnknownGpuError) as excinfo:
        find_gpu("tesla-t4")
    message = str(excinfo.value)
    for key in GPUS:
        assert key in message
    assert "override" in message.lower()
    assert "--gpu-spec" in message
    assert isinstance(excinfo.value, LookupError)


def test_with_overrides_merges_peaks() -> None:
    h100 = GPUS["h100-sxm"]
    spec = with_overrides(
        h100,
        peak_flops={"bf16": 800e12},
        hbm_bandwidth=3.0e12,
        memory_bytes=64 * GIB,
        nvlink_bandwidth=450e9,
    )
    assert spec.peak("bf16") == 800e12
    assert spec.peak("fp8") == 1978.9e12  # merged, not replaced
    assert spec.hbm_bandwidth == 3.0e12
    assert spec.memory_bytes == 64 * GIB
    assert spec.nvlink_bandwidth == 450e9
    assert spec.ridge("bf16") == pytest.approx(800e12 / 3.0e12)
    # The table row is untouched.
    assert h100.peak("bf16") == 989.4e12
    assert h100.hbm_bandwidth == 3.35e12
    assert GPUS["h100-sxm"].peak("bf16") == 989.4e12


def test_with_overrides_nothing_changes_nothing() -> None:
    h200 = GPUS["h200"]
    spec = with_overrides(h200)
    assert spec.hbm_bandwidth == h200.hbm_bandwidth
    assert dict(spec.peak_flops) == dict(h200.peak_flops)
    assert spec.memory_bytes == h200.memory_bytes


def test_with_overrides_adds_a_dtype() -> None:
    spec = with_overrides(GPUS["a100-80gb"], peak_flops={"fp8": 624e12})
    assert spec.peak("fp8") == 624e12
    assert spec.peak("bf16") == 312e12


def test_gpu_spec_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        GPUS["h200"].hbm_bandwidth = 1.0  # type: ignore[misc]


# ------------------------------------------------------------------------------------------
# spec files


def test_load_toml_with_base(tmp_path: Path) -> None:
    path = tmp_path / "capped.toml"
    path.write_text(
        'base = "h100-sxm"\n'
        'name = "H100 SXM, power-capped"\n'
        "hbm_bandwidth = 3.0e12\n"
        "[peak_flops]\n"
        "bf16 = 800e12\n"
    )
    spec = load_gpu_spec(path)
    assert isinstance(spec, GpuSpec)
    assert spec.name == "H100 SXM, power-capped"
    assert spec.peak("bf16") == 800e12
    assert spec.peak("fp8") == 1978.9e12  # from the base row
    assert spec.hbm_bandwidth == 3.0e12
    assert spec.memory_bytes == 81559 * MIB  # from the base row


def test_load_toml_base_by_nvml_name(tmp_path: Path) -> None:
    path = tmp_path / "gpu.toml"
    path.write_text('base = "NVIDIA H200"\nmemory_bytes = 100e9\n')
    spec = load_gpu_spec(path)
    assert spec.hbm_bandwidth == 4.8e12
    assert spec.memory_bytes == 100e9


def test_load_json_standalone(tmp_path: Path) -> None:
    path = tmp_path / "custom.json"
    path.write_text(
        json.dumps(
            {
                "name": "Custom accelerator",
                "peak_flops": {"bf16": 5e14, "fp8": 1e15},
                "hbm_bandwidth": 2e12,
                "memory_bytes": 64 * GIB,
                "nvlink_bandwidth": 100e9,
            }
        )
    )
    spec = load_gpu_spec(path)
    assert spec.name == "Custom accelerator"
    assert spec.peak("bf16") == 5e14
    assert spec.peak("fp8") == 1e15
    assert spec.hbm_bandwidth == 2e12
    assert spec.memory_bytes == 64 * GIB
    assert spec.nvlink_bandwidth == 100e9
    assert spec.ridge("bf16") == pytest.approx(250.0)


def test_load_toml_standalone(tmp_path: Path) -> None:
    path = tmp_path / "custom.toml"
    path.write_text(
        'name = "Lab card"\nhbm_bandwidth = 1e12\nmemory_bytes = 17179869184\n'
        "[peak_flops]\nbf16 = 1e14\n"
    )
    spec = load_gpu_spec(path)
    assert spec.peak("bf16") == 1e14
    assert spec.memory_bytes == 16 * GIB


def _assert_config_error(path: Path, key: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_gpu_spec(path)
    message = str(excinfo.value)
    assert key in message, message
    assert str(path) in message or path.name in message, message


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('base = "h200"\nhbm_bandwith = 3e12\n')  # sic
    _assert_config_error(path, "hbm_bandwith")


def test_non_numeric_value_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"base": "h200", "hbm_bandwidth": "fast"}))
    _assert_config_error(path, "hbm_bandwidth")


def test_negative_value_is_named(tmp_path: Path) -> None:
    path = tmp_path / "neg.toml"
    path.write_text('base = "h200"\nmemory_bytes = -1\n')
    _assert_config_error(path, "memory_bytes")


def test_zero_bandwidth_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "zero.toml"
    path.write_text('base = "h200"\nhbm_bandwidth = 0\n')
    _assert_config_error(path, "hbm_bandwidth")


def test_bad_peak_value_is_named(tmp_path: Path) -> None:
    path = tmp_path / "peak.json"
    path.write_text(json.dumps({"base": "h200", "peak_flops": {"bf16": "lots"}}))
    _assert_config_error(path, "peak_flops")


def test_peak_flops_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "peak.toml"
    path.write_text('base = "h200"\npeak_flops = 1e15\n')
    _assert_config_error(path, "peak_flops")


def test_standalone_missing_required_key(tmp_path: Path) -> None:
    path = tmp_path / "partial.json"
    path.write_text(
        json.dumps({"name": "x", "peak_flops": {"bf16": 1e14}, "memory_bytes": 16 * GIB})
    )
    _assert_config_error(path, "hbm_bandwidth")


def test_unknown_base_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "base.toml"
    path.write_text('base = "tesla-t4"\n')
    with pytest.raises((ConfigError, UnknownGpuError)):
        load_gpu_spec(path)


def test_unparseable_files(tmp_path: Path) -> None:
    toml_path = tmp_path / "broken.toml"
    toml_path.write_text("base = \n")
    with pytest.raises(ConfigError) as excinfo:
        load_gpu_spec(toml_path)
    assert "broken.toml" in str(excinfo.value)
    json_path = tmp_path / "broken.json"
    json_path.write_text("{")
    with pytest.raises(ConfigError) as excinfo:
        load_gpu_spec(json_path)
    assert "broken.json" in str(excinfo.value)
