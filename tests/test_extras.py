"""gpumetrics.extras: the one helper that loads optional libraries, with each library made
unimportable (None in sys.modules: what Python does for a module it must not import), broken
(a module on sys.path that raises as it loads), or present; and pyproject.toml's extras held
equal to the helper's table."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from gpumetrics.errors import GpumetricsError
from gpumetrics.extras import EXTRAS, LazyModule, MissingExtraError, available, require

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

#: The distribution that provides each import name of EXTRAS (pip name -> import name differ).
DISTRIBUTIONS = {
    "opentelemetry.sdk.metrics": "opentelemetry-sdk",
    "opentelemetry.exporter.otlp.proto.http": "opentelemetry-exporter-otlp-proto-http",
    "grafana_foundation_sdk": "grafana-foundation-sdk",
    "bcrypt": "bcrypt",
    "grpc": "grpcio",
    "google.protobuf": "protobuf",
    "torch": "torch",
    "matplotlib": "matplotlib",
    "numpy": "numpy",
    "tokenizers": "tokenizers",
}


def _name(requirement: str) -> str:
    """`opentelemetry-sdk>=1.30` -> `opentelemetry-sdk` (the distribution name)."""
    for stop in "<>=!~[;@ ":
        requirement = requirement.split(stop, 1)[0]
    return requirement.strip().lower()


def test_a_missing_library_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "grafana_foundation_sdk", None)
    with pytest.raises(MissingExtraError) as caught:
        require("render", "gpumetrics render")
    assert str(caught.value) == (
        "gpumetrics render needs the 'render' extra: pip install 'gpumetrics[render]'"
    )
    assert isinstance(caught.value, GpumetricsError)
    assert isinstance(caught.value, ImportError)
    assert (caught.value.feature, caught.value.extra, caught.value.reason) == (
        "gpumetrics render",
        "render",
        "",
    )
    assert not available("render")


def test_every_module_of_an_extra_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The otel extra is two distributions: the SDK alone is not enough."""
    pytest.importorskip("opentelemetry.sdk.metrics")
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http", None)
    with pytest.raises(MissingExtraError, match=r"^push needs the 'otel' extra"):
        require("otel", "push")


def test_a_broken_library_adds_its_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Installed but failing to load (a missing shared library): the reason is kept, on the
    same line."""
    (tmp_path / "bcrypt.py").write_text("raise ImportError('libbcrypt.so: cannot open file')\n")
    monkeypatch.delitem(sys.modules, "bcrypt", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingExtraError) as caught:
        require("web", "basic auth")
    message = str(caught.value)
    assert message.startswith("basic auth needs the 'web' extra: pip install 'gpumetrics[web]'")
    assert message.endswith("(bcrypt: libbcrypt.so: cannot open file)")
    assert "\n" not in message


def test_an_os_error_while_loading_is_a_missing_extra_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """torch raises OSError when a CUDA library is missing."""
    (tmp_path / "torch.py").write_text("raise OSError('libcudnn.so.9: cannot open')\n")
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingExtraError, match=r"\(torch: libcudnn.so.9: cannot open\)$"):
        require("worker", "gpumetrics worker")


def test_a_present_extra_returns_the_module_asked_for() -> None:
    bcrypt = pytest.importorskip("bcrypt")
    assert require("web", "basic auth") is bcrypt
    assert available("web")
    numpy = pytest.importorskip("numpy")
    tokenizers = pytest.importorskip("tokenizers")
    assert require("kvsize", "kv-size") is numpy
    assert require("kvsize", "kv-size", "tokenizers") is tokenizers
    with pytest.raises(KeyError, match="not 'torch'"):
        require("kvsize", "kv-size", "torch")


def test_a_lazy_module_imports_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    bcrypt = pytest.importorskip("bcrypt")
    lazy = LazyModule("web", "basic auth")
    monkeypatch.setitem(sys.modules, "bcrypt", None)
    with pytest.raises(MissingExtraError, match="basic auth needs the 'web' extra"):
        lazy.checkpw  # noqa: B018 - the attribute access is the import
    monkeypatch.setitem(sys.modules, "bcrypt", bcrypt)
    assert lazy.checkpw is bcrypt.checkpw
    with pytest.raises(KeyError):
        LazyModule("nope", "x")


def test_pyproject_extras_are_the_helpers_table() -> None:
    """Each extra of the helper is an extra of pyproject.toml with exactly the distributions
    of its import names; `all` is every one of them; `dev` pulls `all`; the core install
    carries none of them."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    optional: dict[str, list[str]] = project["optional-dependencies"]
    for name, extra in EXTRAS.items():
        assert name in optional, f"pyproject.toml has no [{name}] extra"
        wanted = {DISTRIBUTIONS[module] for module in extra.modules}
        assert {_name(r) for r in optional[name]} == wanted, name
    assert optional["all"] == [f"gpumetrics[{','.join(EXTRAS)}]"]
    assert "gpumetrics[all]" in optional["dev"]
    core = {_name(r) for r in project["dependencies"]}
    assert core == {"nvidia-ml-py", "prometheus-client", "click", "rich", "pyyaml"}
    assert not core & set(DISTRIBUTIONS.values())
