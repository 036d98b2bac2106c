"""`gpumetrics serve --max-connections` (flag, env var, TOML key) overriding the web config's
cap, and TLS settings that cannot work refused when the web config is loaded (exit 2, one
line), not when the server starts."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme
from click.testing import CliRunner

from gpumetrics.cli import cli

from .serve_process import serving

BASE = ["serve", "--fake-gpus", "a100", "--no-infiniband", "--print-config"]


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*BASE, *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def _one_line_error(code: int, stderr: str, *words: str) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    (error,) = [line for line in stderr.splitlines() if line.startswith("Error:")]
    for word in words:
        assert word in error, error


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    leaf = trustme.CA().issue_cert("127.0.0.1")  # an ECDSA key
    paths = {"cert": tmp_path / "s.pem", "key": tmp_path / "s.key"}
    leaf.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    leaf.private_key_pem.write_to_path(str(paths["key"]))
    return paths


def _web(tmp_path: Path, text: str) -> str:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return str(path)


def test_the_flag_env_var_and_toml_key_set_the_cap(tmp_path: Path) -> None:
    def shown(*args: str, env: dict[str, str] | None = None) -> object:
        code, out, err = _run(*args, env=env)
        assert code == 0, err
        return json.loads(out)["max_connections"]

    toml = tmp_path / "g.toml"
    toml.write_text("[web]\nmax_connections = 7\n")
    assert shown() is None  # the web config's (256 unless it says otherwise)
    assert shown("--max-connections", "12") == 12
    assert shown(env={"GPUMETRICS_SERVE_MAX_CONNECTIONS": "9"}) == 9
    assert shown("--config", str(toml)) == 7
    assert shown("--config", str(toml), "--max-connections", "3") == 3


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--max-connections", "0"], ["--max-connections", "0"]),
        (["--max-connections", "many"], ["--max-connections", "many"]),
        (["--max-connections", "70000"], ["--max-connections", "70000"]),
    ],
)
def test_a_bad_cap_is_one_line_and_exit_2(args: list[str], words: list[str]) -> None:
    code, _, err = _run(*args)
    _one_line_error(code, err, *words)


def test_a_bad_toml_cap_is_one_line_and_exit_2(tmp_path: Path) -> None:
    toml = tmp_path / "g.toml"
    toml.write_text('[web]\nmax_connections = "lots"\n')
    code, _, err = _run("--config", str(toml))
    _one_line_error(code, err, "max_connections")


def test_a_certificate_that_cannot_be_loaded_is_one_line_and_exit_2(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    web = _web(tmp_path, f"tls_server_config:\n  cert_file: junk.pem\n  key_file: {pki['key']}\n")
    code, _, err = _run("--web-config", web)
    _one_line_error(code, err, "tls_server_config", "cannot load certificate or key")


def test_a_key_that_does_not_match_the_certificate_is_one_line_and_exit_2(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    other = trustme.CA().issue_cert("127.0.0.1")
    other.private_key_pem.write_to_path(str(tmp_path / "other.key"))
    web = _web(tmp_path, f"tls_server_config:\n  cert_file: {pki['cert']}\n  key_file: other.key\n")
    code, _, err = _run("--web-config", web)
    _one_line_error(code, err, "cannot load certificate or key")


def test_cipher_suites_that_no_client_can_use_are_one_line_and_exit_2(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    rsa_only = (  # the key is ECDSA: with TLS 1.3 off, no suite can sign the handshake
        f"tls_server_config:\n  cert_file: {pki['cert']}\n  key_file: {pki['key']}\n"
        "  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n"
    )
    code, _, err = _run("--web-config", _web(tmp_path, rsa_only))
    _one_line_error(code, err, "tls_server_config.cipher_suites", "NO_SHARED_CIPHER")
    ecdsa = rsa_only.replace("ECDHE_RSA", "ECDHE_ECDSA")
    code, _, err = _run("--web-config", _web(tmp_path, ecdsa))
    assert code == 0, err


def test_the_flag_overrides_the_web_configs_cap_on_real_sockets(tmp_path: Path) -> None:
    web = _web(tmp_path, "http_server_config:\n  max_connections: 100\n  read_header_timeout: 1h\n")
    args = ("--fake-gpus", "a100", "--no-infiniband", "--web-config", web)
    with serving(tmp_path, *args, "--max-connections", "2") as served:
        address = urlsplit(served.url)
        host, port = str(address.hostname), int(address.port or 0)
        # three connections that send nothing (idle, no timeout for an hour): under the cap of
        # 2 the third closes the first; under the web config's 100 the first would stay open
        # and this recv would time out
        idle = [socket.create_connection((host, port), timeout=10) for _ in range(3)]
        try:
            assert idle[0].recv(1) == b""
        finally:
            for sock in idle:
                sock.close()
