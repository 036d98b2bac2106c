"""exporters/systemd/gpumetrics.service, checked by `systemd-analyze verify` (Debian's systemd).

verify also checks that ExecStart's program exists; the unit names where the documented
install puts it (/opt/gpumetrics/bin/gpumetrics), so it is verified as a copy whose ExecStart
points at this environment's `gpumetrics` entry point, everything else unchanged. verify
reports bad values as warnings and still exits 0: any output fails the test, and a broken copy
shows that such warnings are caught.
"""

from __future__ import annotations

import configparser
import shutil
import sys
from pathlib import Path

import pytest

from gpumetrics.export.server import _FD_RESERVE
from gpumetrics.web_config import WebConfig

from .tools import EXPORTERS, require_executable, run

UNIT = EXPORTERS / "systemd" / "gpumetrics.service"
INSTALLED = "/opt/gpumetrics/bin/gpumetrics"


def _entry_point() -> str:
    path = Path(sys.executable).parent / "gpumetrics"
    found = str(path) if path.is_file() else shutil.which("gpumetrics")
    if found is None:
        pytest.skip("the gpumetrics entry point is not installed (pip install -e .)")
    return found


def _verify(text: str, tmp_path: Path) -> str:
    analyze = require_executable("systemd-analyze", "apt-get install systemd")
    unit = tmp_path / "gpumetrics.service"
    unit.write_text(text.replace(INSTALLED, _entry_point()))
    result = run([analyze, "verify", str(unit)])
    return f"rc={result.returncode}\n{result.stdout}{result.stderr}".strip()


def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    assert _verify(UNIT.read_text(), tmp_path) == "rc=0"


def test_verify_catches_a_bad_setting(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=sealed")
    assert "Failed to parse protect system value" in _verify(broken, tmp_path)


def _service() -> dict[str, list[str]]:
    """[Service] as key -> every value given (DeviceAllow repeats)."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif line and not line.startswith("#") and section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_sandbox_keeps_nvml_and_drops_privileges() -> None:
    service = _service()
    assert service["ExecStart"][0].startswith(f"{INSTALLED} serve ")
    assert service["DynamicUser"] == ["yes"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["CapabilityBoundingSet"] == [""]
    assert service["PrivateDevices"] == ["no"], "PrivateDevices=yes hides /dev/nvidia*"
    assert service["DevicePolicy"] == ["closed"]
    assert "char-nvidia-frontend rw" in service["DeviceAllow"]
    assert service["ProtectSystem"] == ["strict"]
    assert "MemoryDenyWriteExecute" not in service
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(UNIT.read_text())
    assert parser["Install"]["WantedBy"] == "multi-user.target"


def test_the_open_files_limit_leaves_room_for_the_connection_cap() -> None:
    """The front lowers max_connections to LimitNOFILE minus its reserve: the unit's limit must
    leave the default cap intact (and TasksMax is set: threads do not grow with connections)."""
    service = _service()
    (nofile,) = service["LimitNOFILE"]
    assert int(nofile) - _FD_RESERVE >= WebConfig().max_connections
    (tasks,) = service["TasksMax"]
    assert int(tasks) >= 32
