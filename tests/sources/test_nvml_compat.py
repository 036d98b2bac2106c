"""gpumetrics on each pinned nvidia-ml-py release (marker `nvml_compat`).

For every release in scripts/nvml_compat_envs.py's PINNED (the oldest pyproject allows, the
real H200 image's 13.610.43, the newest), that release alone is pip-installed into a cached
directory, and `doctor`, `serve`, `worker` and `profile` run in subprocesses with
`PYTHONPATH=<that dir>:<repo>` and this interpreter, on FakeNvml. Each subprocess reports, at
exit, the pynvml file it imported and whether the NVML source module was loaded, so a test
cannot pass on the wrong pynvml.

The environments need PyPI once (then the cache); without it these tests skip, or fail under
GPUMETRICS_REQUIRE_TOOLS=1 as CI runs them.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "gpumetrics"

pytestmark = pytest.mark.nvml_compat


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "nvml_compat_envs", REPO / "scripts" / "nvml_compat_envs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ENVS = _script()

#: Run a gpumetrics command as `python -m gpumetrics` would, then say (on stderr, at exit)
#: which pynvml was imported and whether a module of the NVML source (`sources/nvml*`: the
#: source, its doctor probes, its library loader) was loaded.
_WRAPPER = """
import atexit, sys
def _report():
    nvml = sys.modules.get("pynvml")
    print("NVML-COMPAT", getattr(nvml, "__file__", None),
          any(m.startswith("gpumetrics.sources.nvml") for m in sys.modules),
          file=sys.stderr, flush=True)
atexit.register(_report)
from gpumetrics.cli import main
sys.argv = ["gpumetrics", *sys.argv[1:]]
main()
"""

#: Which of the given `pynvml.X` names this pynvml lacks, and what it resolves.
_NAMES_CHECK = """
import json, sys, pynvml
from gpumetrics.sources.nvml_names import CLOCK_EVENT_REASONS, NAMES, pynvml_version
import gpumetrics.sources.gpm, gpumetrics.sources.nvml_fields, gpumetrics.testing
wanted = json.loads(sys.stdin.read())
print(json.dumps({
    "file": pynvml.__file__,
    "version": pynvml_version(),
    "absent": sorted(n for n in wanted if not hasattr(pynvml, n)),
    "reasons": [label for label, _ in CLOCK_EVENT_REASONS],
    "missing": [m.what for m in NAMES.missing],
}))
"""


@dataclass(frozen=True, slots=True)
class Env:
    version: str
    path: Path

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUMETRICS_")}
        env["PYTHONPATH"] = f"{self.path}{os.pathsep}{REPO}"
        return env

    def check_report(self, stderr: str, *, nvml: bool = True) -> None:
        """The wrapper's exit line names this env's pynvml and the NVML source was loaded; or,
        for a command that has no use for NVML (`nvml=False`: the CLI loads subcommands
        lazily), that the NVML source was not loaded, and any pynvml (torch.cuda imports one)
        is this env's."""
        lines = [line for line in stderr.splitlines() if line.startswith("NVML-COMPAT ")]
        assert lines, f"no NVML-COMPAT line; stderr:\n{stderr[-2000:]}"
        _, file, loaded = lines[-1].split(" ")
        assert loaded == str(nvml)
        assert Path(file) == self.path / "pynvml.py" or (not nvml and file == "None")


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    """The pinned environments (built by the script, cached)."""
    try:
        return {version: ENVS.ensure(version) for version in ENVS.PINNED}
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        reason = f"cannot build the nvidia-ml-py environments (PyPI needed once): {exc}"
        if os.environ.get("GPUMETRICS_REQUIRE_TOOLS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(params=ENVS.PINNED)
def env(request: pytest.FixtureRequest, built: dict[str, Path]) -> Env:
    version = str(request.param)
    return Env(version, built[version])


def _direct_names() -> set[str]:
    """Every `pynvml.X` the package names directly (the rest go through nvml_names)."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "pynvml"
            ):
                names.add(node.attr)
    return names


def _gpumetrics(env: Env, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WRAPPER, *args],
        env=env.environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


def _names(env: Env) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _NAMES_CHECK],
        input=json.dumps(sorted(_direct_names())),
        env=env.environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
    )
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_every_direct_pynvml_name_exists_and_the_rest_resolve(env: Env) -> None:
    report = _names(env)
    assert Path(str(report["file"])) == env.path / "pynvml.py"
    assert report["version"] == env.version
    assert report["absent"] == [], "name these through gpumetrics.sources.nvml_names"
    assert {"gpu_idle", "sw_power_cap", "hw_slowdown"} <= set(report["reasons"])  # type: ignore[arg-type]
    if env.version == "13.615.71":
        assert report["missing"] == []
    if env.version == "13.610.43":
        assert report["missing"] == [
            "clock event reason board_limit",
            "clock event reason reliability",
        ]


def test_doctor(env: Env) -> None:
    result = _gpumetrics(env, "doctor", "--fake-gpus", "h200x2", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    env.check_report(result.stderr)
    checks = json.loads(result.stdout)["checks"]
    names = {(c["area"], c["name"]): c for c in checks}
    release = names[("node", "nvidia-ml-py")]
    assert release["detail"].startswith(env.version)
    assert release["status"] == ("ok" if env.version == "13.615.71" else "warn")
    for gpu in ("gpu 0", "gpu 1"):
        assert names[(gpu, "device")]["status"] == "ok"
        assert names[(gpu, "GPM profiling")]["status"] == "ok"
        assert names[(gpu, "XID events")]["status"] == "ok"


def _lines(stream: object) -> Iterator[str]:
    yield from iter(stream.readline, "")  # type: ignore[attr-defined]


def test_serve_scraped_once_then_sigterm(env: Env) -> None:
    expected_reasons = set(_names(env)["reasons"])  # type: ignore[arg-type]
    process = subprocess.Popen(
        [sys.executable, "-c", _WRAPPER, "serve", "--fake-gpus", "h200x2", "--address",
         "127.0.0.1", "--port", "0", "--interval", "0.25", "--no-infiniband"],
        env=env.environ(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in _lines(process.stderr)])
    reader.start()
    seen: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert process.poll() is None, "serve exited:\n" + "".join(seen)
                continue
            seen.append(line)
            if "serving on " in line:
                url = line.split("serving on ")[1].split()[0]
        assert url is not None, "serve did not start:\n" + "".join(seen)
        body = ""
        ready = url.rsplit("/", 1)[0] + "/ready"
        while time.monotonic() < deadline:  # ready once every source sampled once
            try:
                with urllib.request.urlopen(ready, timeout=5):
                    pass
                break
            except OSError:  # 503 until then (source_up exists from the start, at 0)
                time.sleep(0.1)
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        reader.join(timeout=5)
    while not lines.empty():
        seen.append(lines.get())
    assert code == 0, "".join(seen)
    env.check_report("".join(seen))
    samples = [s for family in text_string_to_metric_families(body) for s in family.samples]
    up = {s.labels["source"]: s.value for s in samples if s.name == "gpumetrics_source_up"}
    assert up == {"nvml": 1.0}
    power = {s.labels["gpu"] for s in samples if s.name == "gpumetrics_gpu_power_watts"}
    assert power == {"0", "1"}
    reasons = {
        s.labels["reason"]
        for s in samples
        if s.name == "gpumetrics_gpu_throttle_reason_active" and s.labels["gpu"] == "0"
    }
    assert reasons == expected_reasons


def test_worker(env: Env) -> None:
    result = _gpumetrics(env, "worker", "--device", "cpu", "--model", "tiny", "--requests", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    env.check_report(result.stderr, nvml=False)  # the worker on CPU never needs NVML


def test_profile(env: Env, tmp_path: Path) -> None:
    report = tmp_path / "profile.json"
    result = _gpumetrics(
        env, "profile", "--device", "cpu", "--model", "tiny", "--batch", "1", "--context", "16",
        "--steps", "2", "--warmup", "0", "--peak-flops", "1T", "--hbm-bandwidth", "10G",
        "--json", str(report),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    env.check_report(result.stderr, nvml=False)  # a CPU sweep has no GPU counters to read
    cells = json.loads(report.read_text())["cells"]
    assert len(cells) == 1
