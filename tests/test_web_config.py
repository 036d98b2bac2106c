"""The web config: every exporter-toolkit key honoured or refused with one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumetrics.errors import ConfigError
from gpumetrics.web_config import CIPHER_SUITES, check_bcrypt_hash, load_web_config

HASH = "$2b$04$OU/ykY7Rs07HOYhf4Vobs.rQh4yoo4lxkdqD.ZMwacf/Mo.dYZuVy"
TLS = "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n"


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    for name in ("c.pem", "k.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    path = tmp_path / "web.yml"
    path.write_text(text)
    return load_web_config(path)


def test_every_supported_key(tmp_path: Path) -> None:
    web = _load(
        tmp_path,
        TLS + "  client_ca_file: ca.pem\n  client_auth_type: RequireAndVerifyClientCert\n"
        "  client_allowed_sans: [scraper.example]\n  min_version: TLS13\n"
        "  max_version: TLS13\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,"
        " TLS_AES_128_GCM_SHA256]\n  prefer_server_cipher_suites: false\n"
        "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n"
        "  max_connections: 64\n  read_header_timeout: 2s\n  idle_timeout: 1m\n"
        f"basic_auth_users:\n  alice: {HASH}\n",
    )
    assert web.client_ca_file == tmp_path / "ca.pem"
    assert web.client_allowed_sans == ("scraper.example",)
    assert (web.min_version, web.max_version) == ("TLS13", "TLS13")
    assert web.cipher_suites[0] in CIPHER_SUITES
    assert web.prefer_server_cipher_suites is False
    assert web.headers == {"X-Frame-Options": "deny"}
    assert (web.max_connections, web.read_header_timeout_s, web.idle_timeout_s) == (64, 2.0, 60.0)
    assert web.client_cert_required


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (TLS + "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "tls_server_config.cipher_suites"),
        (TLS + "  min_version: TLS13\n  max_version: TLS12\n", "tls_server_config.min_version"),
        (TLS + "  min_version: SSL3\n", "tls_server_config.min_version"),
        (TLS + "  cert: inline\n", "tls_server_config.cert"),
        (TLS + "  curve_preferences: [X25519]\n", "tls_server_config.curve_preferences"),
        (TLS + "  client_allowed_sans: [a]\n", "tls_server_config.client_allowed_sans"),
        (TLS + "  client_ca_file: ca.pem\n", "tls_server_config.client_ca_file"),
        (TLS + "  client_auth_type: RequireAnyClientCert\n", "tls_server_config.client_ca_file"),
        (TLS + "  colour: blue\n", "tls_server_config.colour"),
        ("rate_limit:\n  interval: 1s\n", "rate_limit"),
        ("http_server_config:\n  headers:\n    Server: x\n", "http_server_config.headers.Server"),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: x\n",
            "http_server_config.headers.X-Frame-Options",
        ),
        ("http_server_config:\n  max_connections: 0\n", "http_server_config.max_connections"),
        ("http_server_config:\n  idle_timeout: soon\n", "http_server_config.idle_timeout"),
        (
            "http_server_config:\n  read_header_timeout: 0s\n",
            "http_server_config.read_header_timeout",
        ),
        ("basic_auth_users:\n  bob: $2y$10$abcdefghijklmnopqrstuv\n", "basic_auth_users.bob"),
        ("basic_auth_users:\n  bob: 12\n", "basic_auth_users.bob"),
        ("tls_server_config: [\n", "web config"),
    ],
)
def test_refused_with_the_key_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert info.value.key == key
    assert "\n" not in str(info.value)


def test_bcrypt_hash_shapes() -> None:
    assert check_bcrypt_hash(HASH) is None
    assert check_bcrypt_hash(HASH.replace("$2b$", "$2y$")) is None
    assert check_bcrypt_hash(HASH.replace("$04$", "$03$")) is not None
    assert check_bcrypt_hash(HASH[:-1]) is not None
