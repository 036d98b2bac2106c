"""The server's TLS context from a WebConfig, and the client-certificate check done at the
HTTP layer.

Client certificates are requested with CERT_OPTIONAL whenever a client CA is configured: a
certificate that is sent is verified against client_ca_file during the handshake (a bad one
fails it), and one that is required (RequireAnyClientCert, RequireAndVerifyClientCert) is
enforced per request, so /health and /ready keep answering probes that carry no certificate.
client_allowed_sans is checked against the verified certificate's subjectAltName entries.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Any

from ...errors import ConfigError
from ...web_config import CIPHER_SUITES, WebConfig

__all__ = ["client_cert_problem", "server_context"]

#: Handshake rounds the start-up self-test may take (a TLS handshake needs 2-3).
_SELF_TEST_ROUNDS = 8

_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


def server_context(web: WebConfig) -> ssl.SSLContext:
    """An SSLContext honouring min/max version, cipher suites (TLS <= 1.2; TLS 1.3's suites are
    not configurable), server cipher preference and the client CA. Raises ConfigError when a
    file cannot be loaded, or when no client could connect (an in-memory handshake with a
    client that accepts any cipher fails: say only ECDSA suites for an RSA key)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[web.min_version]
    context.maximum_version = _VERSIONS[web.max_version]
    try:
        context.load_cert_chain(str(web.cert_file), str(web.key_file))
        if web.client_ca_file is not None:
            context.load_verify_locations(str(web.client_ca_file))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError("tls_server_config", f"cannot load certificate or key: {exc}") from exc
    legacy = [CIPHER_SUITES[name] for name in web.cipher_suites if name in CIPHER_SUITES]
    if legacy:
        try:
            context.set_ciphers(":".join(legacy))
        except ssl.SSLError as exc:
            raise ConfigError(
                "tls_server_config.cipher_suites",
                f"this OpenSSL ({ssl.OPENSSL_VERSION}) enables none of them",
            ) from exc
    if web.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    context.verify_mode = ssl.CERT_OPTIONAL if web.client_ca_file else ssl.CERT_NONE
    problem = _self_test(context, web)
    if problem is not None:
        where = "tls_server_config.cipher_suites" if legacy else "tls_server_config"
        raise ConfigError(where, f"no client could connect: {problem}")
    return context


def _self_test(server: ssl.SSLContext, web: WebConfig) -> str | None:
    """Handshake with `server` in memory, as a client with every cipher OpenSSL has and the
    same protocol versions; None on success, else OpenSSL's reason."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.minimum_version = _VERSIONS[web.min_version]
    client.maximum_version = _VERSIONS[web.max_version]
    client.set_ciphers("ALL:@SECLEVEL=0")
    pipes = [ssl.MemoryBIO() for _ in range(4)]  # client->server in/out, server->client
    ends = (
        client.wrap_bio(pipes[0], pipes[1], server_side=False),
        server.wrap_bio(pipes[1], pipes[0], server_side=True),
    )
    done = [False, False]
    for _ in range(_SELF_TEST_ROUNDS):
        for i, end in enumerate(ends):
            if done[i]:
                continue
            try:
                end.do_handshake()
                done[i] = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            except ssl.SSLError as exc:
                return str(exc.reason or exc)
        if all(done):
            return None
    return "the handshake did not finish"


def client_cert_problem(web: WebConfig, ssl_object: Any) -> str | None:
    """Why this connection may not read non-probe paths (None: it may). `ssl_object` is the
    connection's ssl.SSLObject (None for plain HTTP)."""
    if not web.client_cert_required:
        return None
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    if not cert:
        return "a client certificate is required"
    if web.client_allowed_sans and not _san_allowed(cert, web.client_allowed_sans):
        return "the client certificate's SANs are not in client_allowed_sans"
    return None


def _san_allowed(cert: dict[str, Any], allowed: tuple[str, ...]) -> bool:
    """Exact match of a DNS, IP, e-mail or URI subjectAltName against the allow-list (IP
    addresses compared as addresses, so 2001:DB8:0:0:0:0:0:1 matches 2001:db8::1)."""
    wanted_ips = set()
    for entry in allowed:
        try:
            wanted_ips.add(ipaddress.ip_address(entry))
        except ValueError:
            continue
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "IP Address":
            try:
                if ipaddress.ip_address(value.strip()) in wanted_ips:
                    return True
            except ValueError:
                continue
        elif kind in ("DNS", "email", "URI") and value in allowed:
            return True
    return False
