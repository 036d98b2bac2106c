"""The shared click parameter types: int lists, quantities, output files (checked before any
work), addresses and KEY=VALUE pairs; and output paths refused up front by `profile`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gpumetrics.cli import cli
from gpumetrics.cli import profile as profile_cli
from gpumetrics.cli.options import ADDRESS, INT_LIST, KEY_VALUE, QUANTITY, OutputFile
from gpumetrics.extras import MissingExtraError


def _fails(param_type: click.ParamType, text: str) -> str:
    with pytest.raises(click.BadParameter) as info:
        param_type.convert(text, None, None)
    return info.value.message


def test_int_lists() -> None:
    assert INT_LIST.convert("1,16, 64", None, None) == (1, 16, 64)
    assert INT_LIST.convert((2, 3), None, None) == (2, 3)
    assert _fails(INT_LIST, "1,x") == "'x' is not an integer"
    assert _fails(INT_LIST, "4,0") == "must be positive, got 0"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4.8T", 4.8e12),
        ("4.8e12", 4.8e12),
        ("141Gi", 141 * 2**30),
        ("989.4 TFLOP/s", 989.4e12),
        ("512", 512.0),
        ("2k", 2000.0),
    ],
)
def test_quantities_in_base_units(text: str, value: float) -> None:
    assert QUANTITY.convert(text, None, None) == pytest.approx(value)


def test_bad_quantities() -> None:
    assert "is not a number" in _fails(QUANTITY, "lots")
    assert "must be > 0" in _fails(QUANTITY, "0T")


def test_addresses_and_pairs() -> None:
    assert ADDRESS.convert("127.0.0.1:9400", None, None) == ("127.0.0.1", 9400)
    assert ADDRESS.convert("[::1]:9400", None, None) == ("::1", 9400)
    assert ADDRESS.convert(":9400", None, None) == ("127.0.0.1", 9400)
    assert "is not ADDR:PORT" in _fails(ADDRESS, "localhost")
    assert "is not ADDR:PORT" in _fails(ADDRESS, "h:99999")
    assert KEY_VALUE.convert("x-token=a=b", None, None) == ("x-token", "a=b")
    assert "is not KEY=VALUE" in _fails(KEY_VALUE, "=v")


def test_output_files(tmp_path: Path) -> None:
    out = OutputFile()
    assert out.convert(str(tmp_path / "r.json"), None, None) == tmp_path / "r.json"
    assert "no such directory" in _fails(out, str(tmp_path / "missing" / "r.json"))
    assert "is a directory" in _fails(out, str(tmp_path))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root writes anywhere
            assert "is not writable" in _fails(out, str(locked / "r.json"))
    finally:
        locked.chmod(0o700)
    needs = OutputFile(requires="plot")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "matplotlib", None)  # not installed
        with pytest.raises(MissingExtraError, match=r"needs the 'plot' extra"):
            needs.convert(str(tmp_path / "p.png"), None, None)


@pytest.mark.parametrize("flag", ["--json", "--csv", "--plot", "--html"])
@pytest.mark.parametrize("mode", [[], ["--engine", "http://127.0.0.1:9/metrics"]])
def test_profile_refuses_a_bad_output_path_before_any_work(
    flag: str, mode: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_work(*_: object, **__: object) -> None:
        raise AssertionError("the run started")

    monkeypatch.setattr(profile_cli, "profile_sweep", no_work)
    monkeypatch.setattr(profile_cli, "profile_attach", no_work)
    bad = tmp_path / "nonexistent" / "r.out"
    result = CliRunner().invoke(cli, ["profile", *mode, flag, str(bad)])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{flag}'" in result.output
    assert "no such directory" in result.output
    assert "Traceback" not in result.output
