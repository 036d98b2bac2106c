"""DESIGN.md §2 boundaries, enforced: layers import downwards only; heavy libraries stay in
their one module; derive/ touches no clock or OS; the worker's core never reaches torch; an
import between two packages of one floor is written here with its reason; and the package's
import graph has no circles (counting imports under TYPE_CHECKING and inside functions)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gpumetrics"

#: Layer of each top-level module of the package; a module may import its own layer or lower.
LAYERS = {
    "catalog": 0, "samples": 0, "units": 0, "errors": 0, "promtext": 0,
    "costmodel": 1, "hardware": 1, "config": 1, "engine_config": 1, "settings": 1, "extras": 1,
    "web_config": 1,
    "hooks": 2, "derive": 2,
    "sources": 3, "kvsize": 3,
    "pipeline": 4, "testing": 4,
    "export": 5, "render": 5, "worker": 5, "profile": 5, "view": 5, "integrations": 5,
    "cli": 6,
    "__main__": 7,
}  # fmt: skip

#: Third-party libraries and the only places (path prefixes inside the package) allowed them.
EXCLUSIVE = {
    "pynvml": ("sources/nvml", "sources/gpm", "sources/xid", "testing/fakenvml"),
    # The scrape bridge parses engines' text with prometheus_client's parser (issue 4 asks
    # for it); everything else about prometheus_client stays in export/prometheus.
    "prometheus_client": ("export/prometheus", "sources/engine/parse", "integrations/vllm"),
    # The vLLM stat-logger plugin runs inside vLLM, which loads it: only it touches vLLM, and
    # it writes into the registry vLLM serves (issue 11).
    "vllm": ("integrations/vllm",),
    "opentelemetry": ("export/otel",),
    # The kubelet PodResources client and its generated stubs (the k8s extra); grpcio-tools
    # only in the stubs' generator.
    "grpc": ("sources/pods/kubelet", "sources/pods/_proto"),
    "grpc_tools": ("sources/pods/_proto/generate",),
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
    "matplotlib": ("profile/plot", "kvsize/plot"),
}

#: The modules that need an extra (gpumetrics/extras.py), per extra: the only modules that
#: import its libraries, and the only ones that fail to import without it. Everything else
#: reaches an optional library through `extras.require` (or `extras.LazyModule`), after which
#: it may import these modules; so `pip install gpumetrics` (no extras) imports every other
#: module. Path prefixes inside the package.
EXTRA_MODULES = {
    "otel": ("export/otel.py",),
    "render": ("render/",),  # render/__init__ builds the dashboards with the grafana SDK
    "web": (),  # export/http/auth.py binds bcrypt as a LazyModule
    "k8s": ("sources/pods/kubelet.py", "sources/pods/_proto/"),
    "worker": tuple(f"{p}.py" for p in EXCLUSIVE["torch"]),
    "plot": ("profile/plot.py", "kvsize/plot.py"),
    # kvsize/plot.py is also the plot extra's (matplotlib, which itself needs numpy).
    "kvsize": (
        "kvsize/mrc.py",
        "kvsize/plot.py",
        "kvsize/reader.py",
        "kvsize/records.py",
        "kvsize/report.py",
        "kvsize/shards.py",
        "kvsize/sizing.py",
        "kvsize/synthetic.py",
        "kvsize/trace.py",
    ),
}

#: The worker's torch-free core (DESIGN.md §2: "worker core" sits with sources, below its torch
#: side). These modules and everything they import inside the package never import torch — not
#: at module level, not in a function, not under TYPE_CHECKING — so the engine's bookkeeping
#: (requests, KV blocks, scheduling, step reports) loads and is tested without it. The torch
#: side is llama, attention and runner (with calibrate and cell_runner); engine.py imports the
#: runner only when an engine is built without one, so it is not core.
WORKER_CORE = ("sequence", "block_manager", "scheduler", "observer", "summary", "tokenizer")

#: Every import between two packages (or top-level modules) of one floor, and every import
#: upwards, each with its reason: the deliberate inversions against the grain, and the order
#: inside the bottom floor. No other is allowed, and each listed one must still happen (a
#: stale entry fails too).
INVERSIONS = {
    ("hooks/_state.py", "gpumetrics.kvsize"): (
        "upwards (2 -> 3), deliberately: the hooks' live ghost cache is kvsize's cache model "
        "(ghost.GhostCache over replay.PrefixLru and hashing's SHARDS filter) run online. "
        "Those three modules are standard library only and kvsize imports its numpy modules "
        "lazily (tests/hooks/test_imports.py checks importing the hooks pulls no numpy); moving "
        "them below the hooks would split the cache model from its offline twins and the "
        "oracles that pin them equal (ghost == SampledCurve, exact curve == PrefixLru replay)."
    ),
    ("catalog/spec.py", "gpumetrics.samples"): (
        "a MetricSpec makes its own Samples (spec.sample(value, *labels)), so every sample is "
        "named from the catalog; samples.py itself imports nothing."
    ),
    ("promtext.py", "gpumetrics.catalog"): (
        "the text renderer writes each family's TYPE and HELP lines from its catalog entry."
    ),
    ("promtext.py", "gpumetrics.samples"): ("the text renderer renders Samples."),
    ("config.py", "gpumetrics.engine_config"): (
        "the config file's [[engines]] tables build the one EngineConfig type."
    ),
    ("config.py", "gpumetrics.web_config"): (
        "config re-exports WebConfig and load_web_config, which live in their own module so "
        "the web config (TLS, auth, HTTP limits) and the TOML file each stay small."
    ),
    ("settings.py", "gpumetrics.engine_config"): (
        "serve's settings carry the engines to scrape as EngineConfigs."
    ),
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
        stated = (relative.as_posix(), ".".join(name.split(".")[:2])) in INVERSIONS
        assert layer is None or layer <= own or stated, (
            f"{relative} imports {name} (layer {layer} > {own})"
        )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_heavy_libraries_stay_in_their_module(path: Path) -> None:
    relative = path.relative_to(PACKAGE).as_posix()
    for name in _imports(path):
        root = name.split(".")[0]
        allowed = EXCLUSIVE.get(root)
        if allowed is not None:
            assert relative.startswith(allowed), f"{relative} imports {root}; only {allowed} may"


#: derive/ and kvsize/ read no clock and touch no OS; kvsize/reader.py is the one file reader.
PURE = sorted(
    p
    for p in [*(PACKAGE / "derive").glob("*.py"), *(PACKAGE / "kvsize").glob("*.py")]
    if p.relative_to(PACKAGE).as_posix() != "kvsize/reader.py"
)


@pytest.mark.parametrize("path", PURE, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_derive_reads_no_clock_and_touches_no_os(path: Path) -> None:
    roots = {name.split(".")[0] for name in _imports(path)}
    relative = path.relative_to(PACKAGE).as_posix()
    assert not roots & CLOCK_AND_OS, f"{relative} imports {roots & CLOCK_AND_OS}"


def test_nothing_in_the_package_imports_the_integrations() -> None:
    """Engine plugins are loaded by their engine only (vLLM through its entry point): an
    import of gpumetrics.integrations from the package would drag vLLM in."""
    for path in _modules():
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("integrations/"):
            continue
        found = sorted(n for n in _imports(path) if n.startswith("gpumetrics.integrations"))
        assert not found, f"{relative} imports {found}"


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


def test_one_floor_imports_itself_only_as_stated() -> None:
    found: set[tuple[str, str]] = set()
    for path in _modules():
        relative = path.relative_to(PACKAGE).as_posix()
        own = relative.split("/")[0].removesuffix(".py")
        if own == "__init__":
            continue
        for name in _imports(path):
            parts = name.split(".")
            other = parts[1] if parts[0] == "gpumetrics" and len(parts) > 1 else None
            if other in LAYERS and other != own and LAYERS[other] >= LAYERS[own]:
                found.add((relative, f"gpumetrics.{other}"))
    assert found - INVERSIONS.keys() == set(), "an unstated same-floor or upward import"
    assert INVERSIONS.keys() - found == set(), "a stated import no longer happens: drop it"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its text (module level, inside
    functions, under TYPE_CHECKING). `from pkg import name` is an edge to `pkg.name` when that
    is a module, else to `pkg` (whose __init__ defines or re-exports the name)."""
    paths = {_module_name(p): p for p in _modules()}

    def resolve(dotted: str) -> str | None:
        parts = dotted.split(".")
        while parts and ".".join(parts) not in paths:
            parts.pop()
        return ".".join(parts) or None

    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets: list[str] = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(
                        package[: len(package) - node.level + 1]
                        + ([node.module] if node.module else [])
                    )
                else:
                    base = node.module or ""
                for alias in node.names:
                    child = f"{base}.{alias.name}"
                    targets.append(child if child in paths else base)
        graph[name] = {r for t in targets if (r := resolve(t)) is not None and r != name}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]


def test_the_import_graph_has_no_circles() -> None:
    graph = _import_graph()
    assert "gpumetrics.hooks.metrics" in graph["gpumetrics.hooks"]  # the graph is real
    circle = _find_cycle(graph)
    assert circle is None, f"an import circle (function-level imports count): {' -> '.join(circle)}"


def _roots(extra: str) -> set[str]:
    from gpumetrics.extras import EXTRAS  # noqa: PLC0415 - the module under test

    return {m.split(".")[0] for m in EXTRAS[extra].modules}


def test_every_extra_has_its_modules_listed() -> None:
    from gpumetrics.extras import EXTRAS  # noqa: PLC0415

    assert set(EXTRA_MODULES) == set(EXTRAS)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_optional_libraries_are_imported_only_by_their_extras_modules(path: Path) -> None:
    relative = path.relative_to(PACKAGE).as_posix()
    roots = {name.split(".")[0] for name in _imports(path)}
    for extra, allowed in EXTRA_MODULES.items():
        used = roots & _roots(extra)
        assert not used or relative.startswith(allowed), (
            f"{relative} imports {sorted(used)} of the {extra!r} extra; only {allowed} may: "
            f"elsewhere use gpumetrics.extras.require({extra!r}, ...)"
        )


_BLOCKED_IMPORTS = """
import importlib, importlib.abc, json, sys
blocked = set(json.loads(sys.argv[1]))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
failed = {}
for module in json.loads(sys.argv[2]):
    try:
        importlib.import_module(module)
    except ImportError as exc:
        failed[module] = exc.name.split(".")[0] if exc.name else str(exc)
print(json.dumps(failed))
"""


def _module_level_roots(path: Path) -> set[str]:
    """Top-level package names `path` imports when it is imported: its body, class bodies and
    if/try/with blocks, not functions and not `if TYPE_CHECKING:`."""
    roots: set[str] = set()
    todo = list(ast.parse(path.read_text()).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                todo += node.body
            todo += node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + node.orelse + node.finalbody
            todo += [n for handler in node.handlers for n in handler.body]
        elif isinstance(node, ast.With | ast.ClassDef):
            todo += node.body
    return roots


def test_without_any_extra_only_the_extras_modules_fail_to_import() -> None:
    """A real core install, simulated: every optional library blocked in a fresh interpreter,
    every module of the package imported. Only EXTRA_MODULES fail, each for a library of its
    own extra; one of them that imports fine must hold no module-level import of one (it
    reaches its library lazily, after `require`)."""
    roots = sorted(set().union(*(_roots(e) for e in EXTRA_MODULES)))
    # The vLLM plugin's module is imported by vLLM, its host, never by a gpumetrics install.
    hosted = EXCLUSIVE["vllm"]
    modules = [
        _module_name(p)
        for p in _modules()
        if p.name != "__main__.py" and not p.relative_to(PACKAGE).as_posix().startswith(hosted)
    ]
    result = subprocess.run(
        [sys.executable, "-c", _BLOCKED_IMPORTS, json.dumps(roots), json.dumps(modules)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    failed: dict[str, str] = json.loads(result.stdout)
    assert "gpumetrics.export.otel" in failed  # the blocker works
    expected: dict[str, set[str]] = {}  # module -> the roots of its extras
    paths: dict[str, Path] = {}
    for path in _modules():
        relative = path.relative_to(PACKAGE).as_posix()
        for extra, allowed in EXTRA_MODULES.items():
            if allowed and relative.startswith(allowed):
                expected.setdefault(_module_name(path), set()).update(_roots(extra))
                paths[_module_name(path)] = path
    assert set(failed) - set(expected) == set(), "core modules that need an extra"
    for module, root in failed.items():
        assert root in expected[module], f"{module} failed on {root}"
    for module in set(expected) - set(failed):
        eager = _module_level_roots(paths[module]) & expected[module]
        assert not eager, f"{module} imports {eager} at module level yet imported without them"
