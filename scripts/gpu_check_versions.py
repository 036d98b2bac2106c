"""gpu-check's environment record, printed as JSON: Python, platform, CPUs, the versions of the
packages gpumetrics uses, torch and its CUDA device, the NVIDIA driver. Stdlib (+ torch if
importable); never fails on a missing piece, it records None or the error instead."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

PACKAGES = (
    "nvidia-ml-py",
    "prometheus-client",
    "transformers",
    "triton",
    "opentelemetry-sdk",
    "bcrypt",
    "grafana-foundation-sdk",
    "click",
    "rich",
    "protobuf",
)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cuda() -> dict[str, Any]:
    try:
        import torch  # noqa: PLC0415
    except ImportError as exc:
        return {"torch": None, "torch_error": repr(exc)}
    cuda: dict[str, Any] = {"available": torch.cuda.is_available(), "version": torch.version.cuda}
    if cuda["available"]:
        props = torch.cuda.get_device_properties(0)
        cuda.update(
            name=props.name,
            capability=f"{props.major}.{props.minor}",
            memory_bytes=props.total_memory,
            sms=props.multi_processor_count,
        )
    return {"torch": torch.__version__, "cuda": cuda}


def _driver() -> str | None:
    try:
        got = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return got.stdout.strip() or None


def main() -> None:
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "executable": sys.executable,
        "pythonpath": os.environ.get("PYTHONPATH", ""),
        "gpumetrics_commit": os.environ.get("GPU_CHECK_COMMIT") or None,
        "driver": _driver(),
    }
    out.update({name: _version(name) for name in PACKAGES})
    out.update(_cuda())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
