"""The web config (Prometheus exporter-toolkit's `--web.config.file` YAML): TLS, client
certificates, basic auth and the HTTP front's limits.

Every key exporter-toolkit documents is either honoured or refused at start-up with a one-line
ConfigError naming the key; none is accepted and ignored. `gpumetrics.config` re-exports
`WebConfig` and `load_web_config`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import ConfigError

__all__ = [
    "CIPHER_SUITES",
    "CLIENT_AUTH_TYPES",
    "TLS13_SUITES",
    "TLS_VERSIONS",
    "WebConfig",
    "check_bcrypt_hash",
    "load_web_config",
]

#: Prometheus exporter-toolkit's client_auth_type values.
CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)

#: exporter-toolkit's min_version/max_version names (Go's tls.VersionTLS1x).
TLS_VERSIONS = ("TLS10", "TLS11", "TLS12", "TLS13")

#: Go's names (crypto/tls.CipherSuites(), the ones exporter-toolkit accepts) of the TLS <= 1.2
#: suites -> OpenSSL's names for them.
CIPHER_SUITES: Mapping[str, str] = MappingProxyType(
    {
        "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
        "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
        "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
        "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    }
)

#: TLS 1.3 suites Go lists too; neither Go nor Python's ssl lets a server choose among them,
#: so naming them in cipher_suites is accepted and changes nothing (as in exporter-toolkit).
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")

#: Response headers exporter-toolkit's http_server_config.headers allows, with the values it
#: allows (None: any value without line breaks).
_HEADERS: Mapping[str, tuple[str, ...] | None] = MappingProxyType(
    {
        "Content-Security-Policy": None,
        "X-Frame-Options": ("deny", "sameorigin"),
        "X-Content-Type-Options": ("nosniff",),
        "X-XSS-Protection": None,
        "Strict-Transport-Security": None,
    }
)

#: Keys refused with the reason (exporter-toolkit has them; this exporter does not).
_UNSUPPORTED = {
    "cert": "inline PEM is not supported; use cert_file",
    "key": "inline PEM is not supported; use key_file",
    "client_ca": "inline PEM is not supported; use client_ca_file",
    "curve_preferences": "not supported (Python's ssl module sets no curve list); remove it",
}

_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class WebConfig:
    """TLS, basic auth and HTTP limits for the exporter's endpoint.

    Timeouts are in seconds. `max_connections` caps open client connections (the oldest idle
    one is closed to make room); `read_header_timeout_s` bounds the time from a request's first
    byte (or from connecting, for the first request) to the end of its headers, and the TLS
    handshake; `idle_timeout_s` closes a keep-alive connection idle that long.
    """

    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    basic_auth_users: Mapping[str, str] = field(default_factory=dict)
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    client_allowed_sans: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    max_connections: int = 256
    read_header_timeout_s: float = 10.0
    idle_timeout_s: float = 120.0

    @property
    def tls(self) -> bool:
        return self.cert_file is not None

    @property
    def client_cert_required(self) -> bool:
        """Non-probe paths need a verified client certificate."""
        return self.client_auth_type in ("RequireAnyClientCert", "RequireAndVerifyClientCert")


def check_bcrypt_hash(hashed: str) -> str | None:
    """None when `hashed` is a well-formed bcrypt hash ($2a$/$2b$/$2y$, cost 04-31, 22 salt
    and 31 hash characters), else the problem."""
    match = _BCRYPT.fullmatch(hashed)
    if match is None:
        return "must be a bcrypt hash ($2y$10$ then 53 characters of [./A-Za-z0-9])"
    if not 4 <= int(match.group(1)) <= 31:
        return f"bcrypt cost {match.group(1)} is outside 04-31"
    return None


def _check(value: object, types: tuple[type, ...] | type, key: str, source: str) -> None:
    types = types if isinstance(types, tuple) else (types,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = " or ".join(t.__name__ for t in types)
        raise ConfigError(key, f"must be {names}, got {value!r}", source=source)


def _strings(value: object, key: str, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, "must be a list of strings", source=source)
    return tuple(value)


def _duration(value: object, key: str, source: str) -> float:
    """Seconds from a number or a Prometheus-style duration ("10s", "2m", "500ms")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        seconds = float(match.group(1)) * _SECONDS[match.group(2)]
    else:
        raise ConfigError(key, f"must be a duration like 10s or 2m, got {value!r}", source=source)
    if not 0.0 < seconds <= 86400.0:
        raise ConfigError(key, f"must be between 0 and 24h, got {value!r}", source=source)
    return seconds


def _tls_options(tls: dict[str, Any], source: str) -> dict[str, Any]:
    for key, problem in _UNSUPPORTED.items():
        if key in tls:
            raise ConfigError(f"tls_server_config.{key}", problem, source=source)
    known = {
        "cert_file", "key_file", "client_ca_file", "client_auth_type", "client_allowed_sans",
        "min_version", "max_version", "cipher_suites", "prefer_server_cipher_suites",
    }  # fmt: skip
    for key in tls:
        if key not in known:
            raise ConfigError(
                f"tls_server_config.{key}",
                f"unknown key; known: {', '.join(sorted(known))}",
                source=source,
            )
    options: dict[str, Any] = {}
    for key in ("min_version", "max_version"):
        if key in tls:
            if tls[key] not in TLS_VERSIONS:
                raise ConfigError(
                    f"tls_server_config.{key}",
                    f"must be one of {', '.join(TLS_VERSIONS)}",
                    source=source,
                )
            options[key] = tls[key]
    low, high = options.get("min_version", "TLS12"), options.get("max_version", "TLS13")
    if TLS_VERSIONS.index(low) > TLS_VERSIONS.index(high):
        raise ConfigError(
            "tls_server_config.min_version", f"{low} > max_version {high}", source=source
        )
    if "cipher_suites" in tls:
        suites = _strings(tls["cipher_suites"], "tls_server_config.cipher_suites", source=source)
        for suite in suites:
            if suite not in CIPHER_SUITES and suite not in TLS13_SUITES:
                raise ConfigError(
                    "tls_server_config.cipher_suites",
                    f"unknown cipher {suite!r} (Go's crypto/tls.CipherSuites() names)",
                    source=source,
                )
        options["cipher_suites"] = suites
    if "prefer_server_cipher_suites" in tls:
        value = tls["prefer_server_cipher_suites"]
        _check(value, bool, "tls_server_config.prefer_server_cipher_suites", source=source)
        options["prefer_server_cipher_suites"] = value
    if "client_allowed_sans" in tls:
        sans = _strings(
            tls["client_allowed_sans"], "tls_server_config.client_allowed_sans", source=source
        )
        options["client_allowed_sans"] = sans
    return options


def _http_options(http: dict[str, Any], source: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in http.items():
        where = f"http_server_config.{key}"
        if key == "http2":  # HTTP/1.1 is served either way; HTTP/2 is never negotiated
            _check(value, bool, where, source=source)
        elif key == "headers":
            _check(value, dict, where, source=source)
            headers: dict[str, str] = {}
            for name, text in value.items():
                if name not in _HEADERS:
                    raise ConfigError(
                        f"{where}.{name}",
                        f"not allowed; allowed: {', '.join(_HEADERS)}",
                        source=source,
                    )
                allowed = _HEADERS[name]
                if not isinstance(text, str) or "\r" in text or "\n" in text:
                    raise ConfigError(f"{where}.{name}", "must be a one-line string", source=source)
                if allowed is not None and text.lower() not in allowed:
                    raise ConfigError(f"{where}.{name}", f"must be one of {allowed}", source=source)
                if text:
                    headers[str(name)] = text
            options["headers"] = headers
        elif key == "max_connections":
            _check(value, int, where, source=source)
            if not 1 <= value <= 65536:
                raise ConfigError(where, f"must be 1..65536, got {value}", source=source)
            options[key] = value
        elif key in ("read_header_timeout", "idle_timeout"):
            options[f"{key}_s"] = _duration(value, where, source=source)
        else:
            known = "http2, headers, max_connections, read_header_timeout, idle_timeout"
            raise ConfigError(where, f"unknown key; known: {known}", source=source)
    return options


def load_web_config(path: Path) -> WebConfig:
    """Read a Prometheus-style web config (YAML). Relative paths are resolved against the
    file's directory, as Prometheus does. Raises ConfigError (one line, naming the key)."""
    import yaml  # noqa: PLC0415 - only `serve --web-config` reads YAML

    source = str(path)
    try:
        data = yaml.safe_load(path.read_bytes()) or {}
    except OSError as exc:
        raise ConfigError("web config", f"cannot read: {exc.strerror}", source=source) from exc
    except yaml.YAMLError as exc:
        one_line = " ".join(str(exc).split())
        raise ConfigError("web config", f"not valid YAML: {one_line}", source=source) from exc
    if not isinstance(data, dict):
        raise ConfigError("web config", "must be a mapping", source=source)
    for key in data:
        if key == "rate_limit":
            raise ConfigError(
                key, "not supported (failed logins are rate-limited per client)", source=source
            )
        if key not in ("tls_server_config", "basic_auth_users", "http_server_config"):
            raise ConfigError(
                str(key),
                "unknown key; known: tls_server_config, basic_auth_users, http_server_config",
                source=source,
            )
    tls: dict[str, Any] = data.get("tls_server_config") or {}
    users: dict[str, Any] = data.get("basic_auth_users") or {}
    http: dict[str, Any] = data.get("http_server_config") or {}
    _check(tls, dict, "tls_server_config", source=source)
    _check(users, dict, "basic_auth_users", source=source)
    _check(http, dict, "http_server_config", source=source)
    for user, hashed in users.items():
        problem: str | None = "must be a string"
        if isinstance(hashed, str):
            problem = check_bcrypt_hash(hashed)
        if problem is not None:
            raise ConfigError(f"basic_auth_users.{user}", problem, source=source)

    def file(key: str) -> Path | None:
        if key not in tls:
            return None
        _check(tls[key], str, f"tls_server_config.{key}", source=source)
        given = Path(tls[key])
        resolved = given if given.is_absolute() else path.parent / given
        if not resolved.is_file():
            raise ConfigError(
                f"tls_server_config.{key}", f"no such file: {resolved}", source=source
            )
        return resolved

    auth = tls.get("client_auth_type", "NoClientCert")
    if auth not in CLIENT_AUTH_TYPES:
        raise ConfigError(
            "tls_server_config.client_auth_type",
            f"must be one of {', '.join(CLIENT_AUTH_TYPES)}",
            source=source,
        )
    config = WebConfig(
        cert_file=file("cert_file"),
        key_file=file("key_file"),
        client_ca_file=file("client_ca_file"),
        client_auth_type=auth,
        basic_auth_users={str(u): str(h) for u, h in users.items()},
        **_tls_options(tls, source=source),
        **_http_options(http, source=source),
    )
    _check_combination(config, source=source)
    return config


def _check_combination(config: WebConfig, source: str) -> None:
    """exporter-toolkit's rules between keys, plus what Python's ssl module cannot do."""
    auth = config.client_auth_type
    if (config.cert_file is None) != (config.key_file is None):
        raise ConfigError("tls_server_config", "cert_file and key_file go together", source=source)
    if config.client_ca_file is not None and auth == "NoClientCert":
        raise ConfigError(
            "tls_server_config.client_ca_file",
            "given without a client_auth_type that asks for certificates",
            source=source,
        )
    verifying = ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert", "RequireAnyClientCert")
    if auth in verifying and config.client_ca_file is None:
        why = (
            " (Python's ssl module cannot accept a certificate it cannot verify; give "
            "the CA that issues your clients' certificates)"
            if auth == "RequireAnyClientCert"
            else ""
        )
        raise ConfigError(
            "tls_server_config.client_ca_file", f"required with {auth}{why}", source=source
        )
    if config.cert_file is None and (auth != "NoClientCert" or config.client_ca_file):
        raise ConfigError("tls_server_config", "client certificates need cert_file", source=source)
    if config.client_allowed_sans and not config.client_cert_required:
        raise ConfigError(
            "tls_server_config.client_allowed_sans",
            "needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert",
            source=source,
        )
