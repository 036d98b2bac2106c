"""DESIGN.md §2 boundaries, enforced: layers import downwards only; heavy libraries stay in
their one module; derive/ touches no clock or OS; the worker's core never reaches torch; a
deliberate inversion between siblings is written here with its reason."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gpumetrics"

#: Layer of each top-level module of the package; a module may import its own layer or lower.
LAYERS = {
    "catalog": 0, "samples": 0, "units": 0, "errors": 0, "promtext": 0,
    "costmodel": 1, "hardware": 1, "config": 1,
    "hooks": 2,
    "sources": 3, "derive": 3,
    "pipeline": 4, "testing": 4,
    "export": 5, "render": 5, "worker": 5, "profile": 5, "view": 5,
    "cli": 6, "__main__": 6,
}  # fmt: skip

#: Third-party libraries and the only places (path prefixes inside the package) allowed them.
EXCLUSIVE = {
    "pynvml": ("sources/nvml", "sources/gpm", "sources/xid", "testing/fakenvml"),
    # The scrape bridge parses engines' text with prometheus_client's parser (issue 4 asks
    # for it); everything else about prometheus_client stays in export/prometheus.
    "prometheus_client": ("export/prometheus", "sources/engine/parse"),
    "opentelemetry": ("export/otel",),
    # The worker's torch side; its core (WORKER_CORE below) and engine.py's module level
    # stay torch-free.
    "torch": (
        "worker/llama",
        "worker/attention",
        "worker/runner",
        "worker/fast_decode",
        "worker/paged_decode",
        "worker/triton_ops",
        "worker/decode_oracle",
        "worker/calibrate",
        "worker/cell_runner",
    ),
    "click": ("cli/",),
    "rich": ("cli/", "view/"),
    "matplotlib": ("profile/plot",),
}

#: The worker's torch-free core (DESIGN.md §2: "worker core" sits with sources, below its torch
#: side). These modules and everything they import inside the package never import torch — not
#: at module level, not in a function, not under TYPE_CHECKING — so the engine's bookkeeping
#: (requests, KV blocks, scheduling, step reports) loads and is tested without it. The torch
#: side is llama, attention and runner (with calibrate and cell_runner); engine.py imports the
#: runner only when an engine is built without one, so it is not core.
WORKER_CORE = ("sequence", "block_manager", "scheduler", "observer", "summary", "tokenizer")

#: Sibling packages of one layer that may import each other only as stated here.
SIBLINGS = ("worker", "profile")

#: Deliberate imports against the grain, each with its reason; no other is allowed, and each
#: listed one must still happen (a stale entry fails too).
INVERSIONS = {
    ("worker/cell_runner.py", "gpumetrics.profile"): (
        "WorkerRunner implements profile's CellRunner protocol: profile (torch-free) plans the "
        "cells and turns records into reports; the worker, which owns torch, runs the cells "
        "and returns profile's record types. The CLI wires them; profile never imports worker."
    ),
    ("worker/calibrate.py", "gpumetrics.profile"): (
        "calibration measures the device's roofs with torch and returns profile's Calibration "
        "record, which the profile report carries."
    ),
}

CLOCK_AND_OS = {"time", "datetime", "os", "socket", "subprocess", "pathlib", "threading"}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    """Absolute dotted names imported by `path` (relative imports resolved)."""
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    package_parts = list(relative.parts[:-1] if path.name != "__init__.py" else relative.parts)
    if path.name == "__init__.py":
        package_parts = list(relative.parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
                names.add(module)
                if not node.module:
                    names.update(f"{module}.{alias.name}" for alias in node.names)
            elif node.module:
                names.add(node.module)
    return names


def _layer_of(dotted: str) -> int | None:
    parts = dotted.split(".")
    if parts[0] != "gpumetrics" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_import_downwards_only(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    top = relative.parts[0].removesuffix(".py")
    if top == "__init__":
        return
    assert top in LAYERS, f"{top} has no layer in LAYERS: add it"
    own = LAYERS[top]
    for name in _imports(path):
        layer = _layer_of(name)
        assert layer is None or layer <= own, f"{relative} imports {name} (layer {layer} > {own})"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_heavy_libraries_stay_in_their_module(path: Path) -> None:
    relative = path.relative_to(PACKAGE).as_posix()
    for name in _imports(path):
        root = name.split(".")[0]
        allowed = EXCLUSIVE.get(root)
        if allowed is not None:
            assert relative.startswith(allowed), f"{relative} imports {root}; only {allowed} may"


@pytest.mark.parametrize("path", sorted((PACKAGE / "derive").glob("*.py")), ids=lambda p: p.name)
def test_derive_reads_no_clock_and_touches_no_os(path: Path) -> None:
    roots = {name.split(".")[0] for name in _imports(path)}
    assert not roots & CLOCK_AND_OS, f"derive/{path.name} imports {roots & CLOCK_AND_OS}"


def test_importing_the_core_pulls_nothing_heavy() -> None:
    code = (
        "import sys, gpumetrics.catalog, gpumetrics.costmodel, gpumetrics.derive, "
        "gpumetrics.hardware\n"
        "heavy = [m for m in ('prometheus_client', 'opentelemetry', 'pynvml', 'torch', "
        "'click', 'rich') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


def _module_path(dotted: str) -> Path | None:
    """The file of a `gpumetrics.…` module (a package's __init__), or None (not a module)."""
    base = PACKAGE.parent.joinpath(*dotted.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _closure(path: Path) -> dict[Path, set[str]]:
    """`path` and every package module it imports, transitively: path -> its imports."""
    seen: dict[Path, set[str]] = {}
    todo = [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen[current] = _imports(current)
        for name in seen[current]:
            found = _module_path(name) if name.startswith("gpumetrics.") else None
            if found is not None:
                todo.append(found)
    return seen


@pytest.mark.parametrize("name", WORKER_CORE)
def test_the_worker_core_never_imports_torch(name: str) -> None:
    for path, names in _closure(PACKAGE / "worker" / f"{name}.py").items():
        torch = sorted(n for n in names if n.split(".")[0] == "torch")
        assert not torch, f"worker/{name}.py reaches {path.relative_to(PACKAGE)}: imports {torch}"


def test_siblings_import_each_other_only_as_stated() -> None:
    found: set[tuple[str, str]] = set()
    for path in _modules():
        relative = path.relative_to(PACKAGE).as_posix()
        own = relative.split("/")[0]
        if own not in SIBLINGS:
            continue
        for name in _imports(path):
            parts = name.split(".")
            other = parts[1] if parts[0] == "gpumetrics" and len(parts) > 1 else None
            if other in SIBLINGS and other != own:
                found.add((relative, f"gpumetrics.{other}"))
    assert found - INVERSIONS.keys() == set(), "an unstated inversion: state it with its reason"
    assert INVERSIONS.keys() - found == set(), "a stated inversion no longer happens: drop it"
