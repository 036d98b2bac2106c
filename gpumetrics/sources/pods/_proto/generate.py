"""Regenerate the PodResources v1 stubs from the vendored api.proto (needs grpcio-tools, in the
dev extra): `python -m gpumetrics.sources.pods._proto.generate` rewrites the committed
api_pb2.py, api_pb2.pyi and api_pb2_grpc.py; tests/sources/pods/test_proto.py generates into a
temporary directory and compares, so the committed stubs never drift from the proto."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["PROTO", "STUBS", "generate"]

#: The vendored proto, and the stubs generated from it (committed beside it).
PROTO = Path(__file__).with_name("api.proto")
STUBS = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")
#: The proto's path relative to the import root, so the stubs import each other absolutely.
_RELATIVE = Path("gpumetrics", "sources", "pods", "_proto", "api.proto")


def generate(out_dir: Path) -> dict[str, str]:
    """Run protoc (grpcio-tools) on the vendored proto into `out_dir`; the stubs' text by name."""
    from grpc_tools import protoc  # noqa: PLC0415 - grpcio-tools, dev extra only

    root = out_dir / "src"
    (root / _RELATIVE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROTO, root / _RELATIVE)
    gen = out_dir / "gen"
    gen.mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{root}",
            f"--python_out={gen}",
            f"--pyi_out={gen}",
            f"--grpc_python_out={gen}",
            str(root / _RELATIVE),
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return {name: (gen / _RELATIVE.parent / name).read_text() for name in STUBS}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in generate(Path(tmp)).items():
            PROTO.with_name(name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
