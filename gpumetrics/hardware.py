"""GPU spec table: dense peak FLOP/s per dtype, HBM bandwidth, memory, NVLink bandwidth.

Peaks are the *dense* figures. NVIDIA datasheets print tensor-core numbers "with sparsity"
(2:4 structured), twice the dense rate; those are never used here. Every row names its source.
Memory is the total NVML reports (`nvidia-smi --query-gpu=memory.total`, MiB), not the
datasheet's "GB": an "80GB" H100 reports 81,559 MiB (85,520,809,984 bytes, 79.6 GiB), an H200
143,771 MiB (150,754,820,096 bytes); the figure and where it was seen are on each row
(`memory_source`). The key a live exporter matches on is the device name NVML reports
(`nvidia-smi --query-gpu=name`).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from .errors import ConfigError, UnknownGpuError
from .units import MIB, TERA

__all__ = [
    "DTYPES",
    "GPUS",
    "GpuSpec",
    "find_gpu",
    "load_gpu_spec",
    "match_nvml_name",
    "with_overrides",
]

#: Dtypes a peak can be given for, in the order tables print them.
DTYPES = ("fp4", "fp8", "int8", "bf16", "fp16", "tf32", "fp32", "fp64")


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """Datasheet peaks of one GPU model, in base units (FLOP/s, bytes/s, bytes)."""

    key: str
    name: str
    peak_flops: Mapping[str, float]
    hbm_bandwidth: float
    memory_bytes: float
    nvlink_bandwidth: float = 0.0
    nvlink_links: int = 0
    source: str = ""
    nvml_patterns: tuple[str, ...] = field(default=(), repr=False)
    memory_source: str = ""
    """Where `memory_bytes` comes from (an NVML/nvidia-smi report, or a user override)."""

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s for `dtype`; KeyError says which dtypes this GPU has."""
        try:
            return self.peak_flops[dtype]
        except KeyError:
            have = ", ".join(d for d in DTYPES if d in self.peak_flops)
            raise KeyError(f"{self.name} has no {dtype} peak (it has: {have})") from None

    def ridge(self, dtype: str) -> float:
        """FLOPs per byte where compute and bandwidth roofs meet (H100 SXM fp8: ~591)."""
        return self.peak(dtype) / self.hbm_bandwidth


def _tflops(**by_dtype: float) -> Mapping[str, float]:
    return MappingProxyType({dtype: tf * TERA for dtype, tf in by_dtype.items()})


_H100_SXM_FLOPS = _tflops(
    fp8=1978.9, int8=1978.9, bf16=989.4, fp16=989.4, tf32=494.7, fp32=66.9, fp64=33.5
)
_H_NVL_FLOPS = _tflops(
    fp8=1670.5, int8=1670.5, bf16=835.5, fp16=835.5, tf32=417.5, fp32=60.0, fp64=30.0
)
#: NVML's total as `nvidia-smi` prints it (MiB); each figure below was read off public
#: nvidia-smi output for that device name unless the row says otherwise.
_SMI = "NVML total (nvidia-smi)"


def _mib(mib: int) -> float:
    return float(mib * MIB)


_A100_FLOPS = _tflops(int8=624.0, bf16=312.0, fp16=312.0, tf32=156.0, fp32=19.5, fp64=9.7)

_TABLE = (
    GpuSpec(
        "a100-40gb",
        "NVIDIA A100 40GB",
        _A100_FLOPS,
        1.555e12,
        _mib(40960),
        600e9,
        12,
        "NVIDIA A100 Tensor Core GPU datasheet (2021): SXM4 40GB, HBM2 1,555 GB/s",
        (r"a100.*40\s*gb",),
        memory_source=f"{_SMI}: 40,960 MiB (A100-SXM4-40GB; drivers <= 470 print 40,536)",
    ),
    GpuSpec(
        "a100-80gb-pcie",
        "NVIDIA A100 80GB PCIe",
        _A100_FLOPS,
        1.935e12,
        _mib(81920),
        600e9,
        12,
        "NVIDIA A100 datasheet (2021): 80GB PCIe, HBM2e 1,935 GB/s, NVLink bridge 600 GB/s",
        (r"a100.*80\s*gb.*pcie",),
        memory_source=f"{_SMI}: 81,920 MiB (NVIDIA A100 80GB PCIe)",
    ),
    GpuSpec(
        "a100-80gb",
        "NVIDIA A100 80GB SXM",
        _A100_FLOPS,
        2.039e12,
        _mib(81920),
        600e9,
        12,
        "NVIDIA A100 datasheet (2021): 80GB SXM4, HBM2e 2,039 GB/s, NVLink 600 GB/s",
        (r"a100.*80\s*gb", r"^(nvidia )?a100$"),
        memory_source=f"{_SMI}: 81,920 MiB (NVIDIA A100-SXM4-80GB)",
    ),
    GpuSpec(
        "h100-pcie",
        "NVIDIA H100 PCIe",
        _tflops(fp8=1513.0, int8=1513.0, bf16=756.5, fp16=756.5, tf32=378.0, fp32=51.2, fp64=25.6),
        2.0e12,
        _mib(81559),
        600e9,
        12,
        "NVIDIA H100 Tensor Core GPU datasheet (2023): PCIe 80GB, HBM2e 2 TB/s; sparse /2",
        (r"h100.*pcie",),
        memory_source=f"{_SMI}: 81,559 MiB (NVIDIA H100 PCIe)",
    ),
    GpuSpec(
        "h100-nvl",
        "NVIDIA H100 NVL",
        _H_NVL_FLOPS,
        3.9e12,
        _mib(95830),
        600e9,
        12,
        "NVIDIA H100 datasheet (2023): H100 NVL 94GB, HBM3 3.9 TB/s; sparse figures /2",
        (r"h100.*nvl",),
        memory_source=f"{_SMI}: 95,830 MiB (NVIDIA H100 NVL)",
    ),
    GpuSpec(
        "h100-sxm",
        "NVIDIA H100 SXM",
        _H100_SXM_FLOPS,
        3.35e12,
        _mib(81559),
        900e9,
        18,
        "NVIDIA H100 datasheet (2023): SXM5 80GB HBM3 3.35 TB/s, NVLink 900 GB/s; sparse /2",
        (r"h100.*hbm3", r"h100.*sxm", r"^(nvidia )?h100$"),
        memory_source=f"{_SMI}: 81,559 MiB (NVIDIA H100 80GB HBM3)",
    ),
    GpuSpec(
        "h200-nvl",
        "NVIDIA H200 NVL",
        _H_NVL_FLOPS,
        4.8e12,
        _mib(143771),
        900e9,
        18,
        "NVIDIA H200 Tensor Core GPU datasheet (2024): H200 NVL 141GB HBM3e 4.8 TB/s",
        (r"h200.*nvl",),
        memory_source=f"{_SMI}: 143,771 MiB (NVIDIA H200 NVL)",
    ),
    GpuSpec(
        "h200",
        "NVIDIA H200 SXM",
        _H100_SXM_FLOPS,
        4.8e12,
        _mib(143771),
        900e9,
        18,
        "NVIDIA H200 datasheet (2024): SXM 141GB HBM3e 4.8 TB/s, H100 SXM compute",
        (r"h200",),
        memory_source=f"{_SMI}: 150,754,820,096 B = 143,771 MiB (our H200 SXM, 2026-12)",
    ),
    GpuSpec(
        "l40s",
        "NVIDIA L40S",
        _tflops(fp8=733.0, int8=733.0, bf16=362.05, fp16=362.05, tf32=183.0, fp32=91.6),
        864e9,
        _mib(46068),
        0.0,
        0,
        "NVIDIA L40S datasheet (2023): 48GB GDDR6 864 GB/s, no NVLink; sparse figures /2",
        (r"l40s",),
        memory_source=f"{_SMI}: 46,068 MiB (NVIDIA L40S)",
    ),
    GpuSpec(
        "b200",
        "NVIDIA B200",
        _tflops(
            fp4=9000.0, fp8=4500.0, int8=4500.0, bf16=2250.0, fp16=2250.0, tf32=1100.0, fp64=40.0
        ),
        7.7e12,
        _mib(183359),
        1.8e12,
        18,
        "NVIDIA HGX B200 datasheet (2024), per GPU: 1.44 TB / 62 TB/s for 8 GPUs; sparse /2",
        (r"\bb200",),
        memory_source=f"{_SMI}: 183,359 MiB (NVIDIA B200)",
    ),
    GpuSpec(
        "gb200",
        "NVIDIA GB200 (per GPU)",
        _tflops(
            fp4=10000.0, fp8=5000.0, int8=5000.0, bf16=2500.0, fp16=2500.0, tf32=1250.0, fp64=45.0
        ),
        8.0e12,
        _mib(189471),
        1.8e12,
        18,
        "NVIDIA GB200 NVL72 datasheet (2024), per GPU of 72: 13.4 TB, 576 TB/s; sparse /2",
        (r"gb200",),
        memory_source=f"{_SMI}: 189,471 MiB (NVIDIA GB200)",
    ),
)

#: The table by key (`h100-sxm`, `h200`, ...).
GPUS: Mapping[str, GpuSpec] = MappingProxyType({spec.key: spec for spec in _TABLE})


def match_nvml_name(nvml_name: str) -> GpuSpec | None:
    """The row for a device name as NVML reports it (`NVIDIA H100 80GB HBM3`), or None.

    MIG device names (`NVIDIA H100 80GB HBM3 MIG 1g.10gb`) match their parent GPU; a MIG
    slice's share of the peaks is the caller's to apply.
    """
    # Drop a MIG slice suffix first: "... 80GB MIG 3g.40gb" must not read as a 40GB part.
    lowered = re.sub(r"\s+mig\s.*$", "", nvml_name.strip().lower())
    for spec in _TABLE:
        if any(re.search(pattern, lowered) for pattern in spec.nvml_patterns):
            return spec
    return None


def find_gpu(name: str) -> GpuSpec:
    """A row by key (`h200`) or by NVML device name; UnknownGpuError lists the keys."""
    key = name.strip().lower()
    if key in GPUS:
        return GPUS[key]
    spec = match_nvml_name(name)
    if spec is None:
        raise UnknownGpuError(name, sorted(GPUS))
    return spec


def with_overrides(
    spec: GpuSpec,
    *,
    peak_flops: Mapping[str, float] | None = None,
    hbm_bandwidth: float | None = None,
    memory_bytes: float | None = None,
    nvlink_bandwidth: float | None = None,
) -> GpuSpec:
    """`spec` with the given fields replaced (peak_flops merges per dtype)."""
    for label, value in (("hbm_bandwidth", hbm_bandwidth), ("memory_bytes", memory_bytes)):
        if value is not None and not value > 0:
            raise ConfigError(label, f"must be > 0, got {value}")
    flops = dict(spec.peak_flops)
    for dtype, value in (peak_flops or {}).items():
        if dtype not in DTYPES:
            raise ConfigError(f"peak_flops.{dtype}", f"unknown dtype; known: {', '.join(DTYPES)}")
        if not value > 0:
            raise ConfigError(f"peak_flops.{dtype}", f"must be > 0, got {value}")
        flops[dtype] = float(value)
    return replace(
        spec,
        peak_flops=MappingProxyType(flops),
        hbm_bandwidth=hbm_bandwidth if hbm_bandwidth is not None else spec.hbm_bandwidth,
        memory_bytes=memory_bytes if memory_bytes is not None else spec.memory_bytes,
        nvlink_bandwidth=(
            nvlink_bandwidth if nvlink_bandwidth is not None else spec.nvlink_bandwidth
        ),
        source=spec.source + " (with user overrides)",
        memory_source="user override" if memory_bytes is not None else spec.memory_source,
    )


def load_gpu_spec(path: Path) -> GpuSpec:
    """A GPU described in a TOML or JSON file, optionally based on a table row.

    Keys: `base` (a table key or NVML name to start from), `name`, `peak_flops` (a table of
    dtype -> FLOP/s), `hbm_bandwidth` (bytes/s), `memory_bytes`, `nvlink_bandwidth`.
    Without `base`, `name`, `peak_flops` and `hbm_bandwidth` and `memory_bytes` are required.
    """
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError("gpu spec", f"cannot read: {exc.strerror}", source=source) from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            "gpu spec", f"not valid {path.suffix[1:] or 'TOML'}: {exc}", source=source
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError("gpu spec", "must be a table/object", source=source)
    known = {"base", "name", "peak_flops", "hbm_bandwidth", "memory_bytes", "nvlink_bandwidth"}
    for key in data:
        if key not in known:
            raise ConfigError(key, f"unknown key; known: {', '.join(sorted(known))}", source=source)
    try:
        if "base" in data:
            base = find_gpu(str(data["base"]))
        else:
            for required in ("name", "peak_flops", "hbm_bandwidth", "memory_bytes"):
                if required not in data:
                    raise ConfigError(required, "missing (or give `base`)", source=source)
            base = GpuSpec(str(data["name"]), str(data["name"]), {}, 1.0, 1.0)
        flops = data.get("peak_flops", {})
        if not isinstance(flops, dict):
            raise ConfigError("peak_flops", "must be a table of dtype = FLOP/s", source=source)
        spec = with_overrides(
            base,
            peak_flops={str(k): _number(f"peak_flops.{k}", v, source) for k, v in flops.items()},
            hbm_bandwidth=_opt_number("hbm_bandwidth", data, source),
            memory_bytes=_opt_number("memory_bytes", data, source),
            nvlink_bandwidth=_opt_number("nvlink_bandwidth", data, source),
        )
    except ConfigError as exc:
        if exc.source is None:
            raise ConfigError(exc.key, exc.problem, source=source) from exc
        raise
    name = str(data.get("name", spec.name))
    return replace(spec, key=name.lower(), name=name, source=f"user file {source}")


def _number(key: str, value: object, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"must be a number, got {value!r}", source=source)
    return float(value)


def _opt_number(key: str, data: Mapping[str, object], source: str) -> float | None:
    return _number(key, data[key], source) if key in data else None
