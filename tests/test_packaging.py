"""The core install, for real (marker `packaging`): the wheel built from this checkout, pip
installed into a fresh virtual environment with its dependencies and no extra, then used as an
engine and an operator would use it. What it must give: the hooks (pulling nothing), `serve`
answering /metrics on fake GPUs, the CLI; what it must not: any optional library, and every
command that needs one says which extra in one line with exit code 2.

The install needs the package index (or pip's configured wheel directory) for the five core
dependencies; without it the test skips, or fails under GPUMETRICS_REQUIRE_TOOLS=1 as CI
runs it. `pytest -m "not packaging"` leaves it out. About 10 s.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpumetrics.extras import EXTRAS

REPO = Path(__file__).resolve().parent.parent
TRACE = REPO / "tests" / "data" / "mooncake" / "conversation_trace.jsonl.gz"

pytestmark = pytest.mark.packaging

#: The distributions a core install holds: the five dependencies and what they pull.
CORE = {
    "gpumetrics",
    "nvidia-ml-py",
    "prometheus-client",
    "click",
    "rich",
    "pyyaml",
    "markdown-it-py",
    "mdurl",
    "pygments",
}


@dataclass(frozen=True, slots=True)
class Venv:
    root: Path

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    @property
    def gpumetrics(self) -> str:
        return str(self.root / "bin" / "gpumetrics")

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_clean_env(),
            cwd=self.root,
        )


def _clean_env() -> dict[str, str]:
    """The environment without what would show this checkout or our settings to a child
    (PYTHONPATH would let pip see the checkout's gpumetrics as installed)."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV")
    return {
        k: v for k, v in os.environ.items() if k not in drop and not k.startswith("GPUMETRICS_")
    }


def _pip(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_clean_env(),
    )


def _has_build_backend() -> bool:
    """setuptools >= 77 (pyproject's build-system) importable here."""
    try:
        major = int(importlib.metadata.version("setuptools").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return major >= 77


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv holding the wheel of this checkout and its core dependencies only."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "src"  # build from a copy: the build writes build/ and *.egg-info
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "gpumetrics", source / "gpumetrics", ignore=shutil.ignore_patterns("__pycache__")
    )
    # This interpreter's setuptools when it is new enough (fast, offline), else pip's isolated
    # build (which fetches the build-system requirements from the index).
    isolation = ["--no-build-isolation"] if _has_build_backend() else []
    built = _pip("wheel", "--quiet", "--no-deps", *isolation, "-w", str(tmp / "dist"), str(source))
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp / "dist").glob("gpumetrics-*.whl")
    root = tmp / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=60
    )
    installed = _pip("--python", str(root / "bin" / "python"), "install", "--quiet", str(wheel))
    if installed.returncode != 0:
        reason = (
            "cannot install the core dependencies (package index needed): "
            f"{installed.stderr.strip()[-300:]}"
        )
        if os.environ.get("GPUMETRICS_REQUIRE_TOOLS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return Venv(root)


def test_the_core_install_holds_no_extra(venv: Venv) -> None:
    listed = _pip("--python", venv.python, "list", "--format", "json")
    names = {d["name"].lower().replace("_", "-") for d in json.loads(listed.stdout)}
    assert names == CORE
    for extra in EXTRAS.values():
        for module in extra.modules:
            found = venv.run(
                venv.python,
                "-c",
                f"import importlib.util as u; print(u.find_spec({module.split('.')[0]!r}) is None)",
            )
            assert found.stdout.strip() == "True", f"{module} ({extra.name}) importable"


def test_the_hooks_import_and_pull_nothing(venv: Venv) -> None:
    code = (
        "import sys, gpumetrics.hooks as h\n"
        "m = h.EngineMetrics('engine-0', 'llama-3-8b')\n"
        "m.set_queue(waiting=3, running=5)\n"
        "assert b'gpumetrics_engine_' in m.render_text()\n"
        "heavy = ('prometheus_client', 'pynvml', 'click', 'rich', 'yaml')\n"
        "print(sorted(n for n in heavy if n in sys.modules))"
    )
    result = venv.run(venv.python, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_cli_runs(venv: Venv) -> None:
    help_text = venv.run(venv.gpumetrics, "--help")
    assert help_text.returncode == 0
    assert "serve" in help_text.stdout
    plan = venv.run(venv.gpumetrics, "roofline", "--gpu", "h200", "--batch", "1,64", "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["gpu"]["key"] == "h200"


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["render", "--check"], "render"),
        (["serve", "--fake-gpus", "a100", "--otlp-endpoint", "http://127.0.0.1:9"], "otel"),
        (["kv-size", "--trace", str(TRACE)], "kvsize"),
        (["worker"], "worker"),
        (["profile", "--batch", "1"], "worker"),
    ],
    ids=["render", "serve-otlp", "kv-size", "worker", "profile"],
)
def test_a_command_needing_an_extra_says_which(venv: Venv, args: list[str], extra: str) -> None:
    result = venv.run(venv.gpumetrics, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: gpumetrics ")
    assert lines[0].endswith(f"needs the '{extra}' extra: pip install 'gpumetrics[{extra}]'")


def test_serve_answers_metrics_on_fake_gpus(venv: Venv) -> None:
    process = subprocess.Popen(
        [
            venv.gpumetrics,
            "serve",
            "--fake-gpus",
            "a100",
            "--address",
            "127.0.0.1",
            "--port",
            "0",
            "--interval",
            "0.2",
            "--no-infiniband",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=venv.root,
    )
    try:
        assert process.stderr is not None
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            if "serving on http://127.0.0.1:" in line:
                port = int(line.split("127.0.0.1:")[1].split("/")[0])
        assert port is not None, "serve did not say where it serves"
        body = ""
        while time.monotonic() < deadline and "gpumetrics_gpu_power_watts{" not in body:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                body = reply.read().decode()
            time.sleep(0.2)
        assert "gpumetrics_gpu_power_watts{" in body
        assert 'gpumetrics_source_up{source="nvml"} 1.0' in body
    finally:
        process.terminate()
        process.wait(15)
