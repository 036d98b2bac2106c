"""The worker package imports lazily (PEP 562): its torch-free core — sequence, block manager,
scheduler, observers, the engine loop — loads without torch; the torch side on first use."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from gpumetrics import worker

TORCH_FREE = (
    "sequence",
    "block_manager",
    "scheduler",
    "observer",
    "summary",
    "engine",
    "loadgen",
    "tokenizer",
)


def _loaded_after(code: str) -> set[str]:
    """Top-level packages in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(result.stdout.split())


def test_the_core_runs_a_schedule_without_loading_torch() -> None:
    code = "\n".join(
        [
            *(f"import gpumetrics.worker.{name}" for name in TORCH_FREE),
            "from gpumetrics.worker import Engine, EngineConfig, StepLog, WorkerSummary",
            "from gpumetrics.worker.block_manager import BlockManager",
            "from gpumetrics.worker.scheduler import Scheduler",
            "from gpumetrics.worker.sequence import Sequence",
            "s = Scheduler(BlockManager(8, 4), max_batch=2, max_batch_tokens=16)",
            "s.add(Sequence(0, [1, 2, 3, 4, 5], 2, 0.0))",
            "out = s.schedule()",
            "assert s.update(out, [7], 1.0) == [] and out.entries[0].new_tokens == 5",
        ]
    )
    loaded = _loaded_after(code)
    assert "gpumetrics" in loaded  # the probe ran
    assert "torch" not in loaded


def test_the_torch_side_loads_on_first_use() -> None:
    pytest.importorskip("torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'")
    assert "torch" in _loaded_after("import gpumetrics.worker as w\nw.ModelRunner")


def test_every_public_name_resolves_to_its_module() -> None:
    pytest.importorskip("torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'")
    for name in worker.__all__:
        module = importlib.import_module(f"gpumetrics.worker.{worker._EXPORTS[name]}")
        assert getattr(worker, name) is getattr(module, name)
    assert sorted(worker.__all__) == sorted(worker._EXPORTS)
    assert set(worker.__all__) <= set(dir(worker))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = worker.Nope  # type: ignore[attr-defined]


def test_the_type_checking_imports_match_the_lazy_table() -> None:
    """mypy reads the `if TYPE_CHECKING:` imports; the runtime reads `_EXPORTS`: the same."""
    tree = ast.parse(Path(worker.__file__).read_text())
    (block,) = [n for n in tree.body if isinstance(n, ast.If)]
    typed = {
        alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert typed == worker._EXPORTS
