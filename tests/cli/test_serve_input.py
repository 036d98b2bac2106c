"""`gpumetrics serve` input: every flag, environment variable and config key checked before
anything starts, one line and exit 2 when bad; the env var names follow the documented rule."""

from __future__ import annotations

import errno
import json
import os
import socket
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gpumetrics.cli import cli
from gpumetrics.cli.serve import serve
from gpumetrics.export.server import ListenError

from .serve_process import serving

BASE = ["serve", "--fake-gpus", "a100", "--no-infiniband", "--print-config"]


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*BASE, *args], env=env)
    return result.exit_code, result.stderr


def _one_line_error(code: int, stderr: str, *words: str) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    (error,) = [line for line in stderr.splitlines() if line.startswith("Error:")]
    for word in words:
        assert word in error, error


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--interval", "nan"], ["--interval", "not a finite number"]),
        (["--interval", "inf"], ["--interval"]),
        (["--otlp-interval", "nan"], ["--otlp-interval", "not a finite number"]),
        (["--address", "999.1.1.1"], ["--address", "not an IPv4 or IPv6 address"]),
        (["--address", "1:2:3"], ["--address", "not an IPv4 or IPv6 address"]),
        (["--address", "bad host!"], ["--address", "not an IP address or host name"]),
        (["--otlp-endpoint", "garbage"], ["--otlp-endpoint", "http:// or https://"]),
        (["--otlp-endpoint", "http://h:99999"], ["--otlp-endpoint"]),
        (["--engine", "a=http://x:1,timeout_s=abc"], ["--engine", "timeout_s"]),
        (["--engine", "a=http://x:1,timeout_s=1e308"], ["--engine", "timeout_s"]),
        (["--engine", "a=http://x:1,timeout_s=nan"], ["--engine", "timeout_s"]),
        (["--engine", "a=http://x:1,max_series=0"], ["--engine", "max_series"]),
        (["--engine", "a=http://x:1", "--engine", "a=http://y:2"], ["names must be unique"]),
        (["--engine", "a=ftp://x"], ["--engine", "scheme"]),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_2(args: list[str], words: list[str]) -> None:
    _one_line_error(*_run(*args), *words)


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("GPUMETRICS_SERVE_INTERVAL", "nan", ["interval"]),
        ("GPUMETRICS_SERVE_OTLP_INTERVAL", "nan", ["otlp-interval"]),
        ("GPUMETRICS_SERVE_ADDRESS", "999.1.1.1", ["address"]),
        ("GPUMETRICS_SERVE_ENGINE", "a=http://x:1,timeout_s=abc", ["engine"]),
    ],
)
def test_a_bad_env_var_is_one_line_and_exit_2(name: str, value: str, words: list[str]) -> None:
    _one_line_error(*_run(env={name: value}), *words)


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ("[serve]\ninterval = nan\n", ["interval", "not a finite number"]),
        ("[serve]\ninterval = inf\n", ["interval"]),
        ("[otlp]\ninterval = nan\n", ["otlp-interval"]),
        ('[serve]\naddress = "999.1.1.1"\n', ["address"]),
        ('[otlp]\nendpoint = "garbage"\n', ["otlp-endpoint"]),
        ('[[engines]]\nname = "a"\nurl = "http://x:1"\ntimeout_s = "abc"\n', ["timeout_s"]),
        ('[[engines]]\nname = "a"\nurl = "http://x:1"\ntimeout_s = 1e308\n', ["timeout_s"]),
        ('[[engines]]\nname = "a"\nurl = "http://x:1"\nmax_labels = 1.5\n', ["max_labels"]),
        (
            '[[engines]]\nname = "a"\nurl = "http://x:1"\n[[engines]]\nname = "a"\n'
            'url = "http://x:2"\n',
            ["names must be unique"],
        ),
    ],
)
def test_a_bad_config_key_is_one_line_and_exit_2(
    tmp_path: Path, toml: str, words: list[str]
) -> None:
    path = tmp_path / "g.toml"
    path.write_text(toml)
    _one_line_error(*_run("--config", str(path)), *words)


def test_a_config_file_that_is_not_utf8_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_bytes(b'[serve]\nlog_level = "\xff"\n')
    _one_line_error(*_run("--config", str(path)), "--config", "not UTF-8")


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("::", "::"),
        ("127.0.0.1", "127.0.0.1"),
        ("host-a.b", "host-a.b"),
    ],
)
def test_good_addresses_are_accepted(address: str, shown: str) -> None:
    result = CliRunner().invoke(cli, [*BASE, "--address", address])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["address"] == shown


def test_the_env_var_of_every_option_follows_the_documented_rule() -> None:
    """docs/configuration.md: GPUMETRICS_SERVE_<OPTION>, the flag's name in upper case with
    dashes as underscores, for every option (with click's auto prefix, an option whose
    parameter name differs from its flag, such as --engine -> engines, needs it spelt out)."""
    for param in serve.params:
        if not isinstance(param, click.Option) or param.name == "config":
            continue
        flag = next(o for o in param.opts if o.startswith("--"))
        expected = "GPUMETRICS_SERVE_" + flag[2:].upper().replace("-", "_")
        effective = param.envvar or f"GPUMETRICS_SERVE_{param.name.upper()}"
        assert effective == expected, (flag, effective)


def test_engines_from_the_env_var_replace_the_files(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text('[[engines]]\nname = "file"\nurl = "http://127.0.0.1:1"\n')
    env = {"GPUMETRICS_SERVE_ENGINE": "a=http://127.0.0.1:2 b=http://127.0.0.1:3,max_series=5"}
    result = CliRunner().invoke(cli, [*BASE, "--config", str(path)], env=env)
    assert result.exit_code == 0, result.stderr
    engines = json.loads(result.stdout)["engines"]
    assert [(e["name"], e["max_series"]) for e in engines] == [("a", 10000), ("b", 5)]


def test_an_address_this_machine_lacks_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "--fake-gpus",
            "a100",
            "--no-infiniband",
            "--address",
            "192.0.2.1",
            "--port",
            "0",
        ],
    )
    _one_line_error(result.exit_code, result.stderr, "cannot listen on 192.0.2.1", "no interface")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may bind ports below 1024")
def test_a_privileged_port_without_root_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "--fake-gpus",
            "a100",
            "--no-infiniband",
            "--address",
            "127.0.0.1",
            "--port",
            "80",
        ],
    )
    _one_line_error(result.exit_code, result.stderr, "permission denied", "CAP_NET_BIND_SERVICE")


def test_listen_errors_say_what_to_do() -> None:
    message = str(ListenError("0.0.0.0", 80, OSError(errno.EACCES, "Permission denied")))
    assert message == (
        "cannot listen on 0.0.0.0:80: permission denied (ports below 1024 need root or "
        "CAP_NET_BIND_SERVICE)"
    )


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_loopback_serves(tmp_path: Path) -> None:
    with (
        serving(tmp_path, "--fake-gpus", "a100", "--no-infiniband", address="::1") as served,
        urllib.request.urlopen(f"{served.url}/metrics", timeout=5) as response,
    ):
        assert response.status == 200
