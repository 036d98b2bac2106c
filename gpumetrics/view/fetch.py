"""One GET of a `serve` endpoint for `top`, with the client side of the web config: basic
auth, a CA to trust, a client certificate, or no verification (`curl -u USER --cacert CA
--cert CRT --key KEY [-k] URL`). Parsed with the engine bridge's Prometheus-text parser."""

from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import GpumetricsError
from ..sources.engine.errors import EngineError
from ..sources.engine.parse import decode, parse_text
from .model import Point

__all__ = ["Endpoint", "FetchError", "read_points"]

#: The classic text format (the parser reads it; OpenMetrics would need another).
_ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"
_MAX_BYTES = 64 << 20


class FetchError(GpumetricsError):
    """The endpoint could not be read: one line saying why."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to read metrics. `password` is the basic-auth password (from a file);
    `insecure` skips certificate verification (test set-ups only)."""

    url: str
    user: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise FetchError(f"--url {self.url!r}: expected http:// or https://")
        if (self.cert_file is None) != (self.key_file is None):
            raise FetchError("--cert-file and --key-file go together")
        if (self.user is None) != (self.password is None):
            raise FetchError("--basic-auth-user and --basic-auth-password-file go together")

    def context(self) -> ssl.SSLContext | None:
        """The TLS client context for an https URL (None for http)."""
        if not self.url.startswith("https://"):
            return None
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            if self.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self.cert_file is not None and self.key_file is not None:
                context.load_cert_chain(str(self.cert_file), str(self.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise FetchError(f"TLS set-up failed: {exc}") from None
        return context


def read_points(endpoint: Endpoint) -> list[Point]:
    """Every sample of one scrape as points; FetchError with a one-line reason otherwise."""
    request = urllib.request.Request(endpoint.url, headers={"Accept": _ACCEPT})
    if endpoint.user is not None and endpoint.password is not None:
        token = base64.b64encode(f"{endpoint.user}:{endpoint.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(
            request, timeout=endpoint.timeout_s, context=endpoint.context()
        ) as response:
            body = response.read(_MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        hint = " (check --basic-auth-user/--basic-auth-password-file)" if exc.code == 401 else ""
        raise FetchError(f"{endpoint.url}: HTTP {exc.code} {exc.reason}{hint}") from None
    except urllib.error.URLError as exc:
        raise FetchError(f"cannot read {endpoint.url}: {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise FetchError(f"cannot read {endpoint.url}: {exc}") from None
    if len(body) > _MAX_BYTES:
        raise FetchError(f"{endpoint.url}: more than {_MAX_BYTES} bytes; not a metrics page?")
    try:
        exposition = parse_text(decode(body))
    except EngineError as exc:
        raise FetchError(f"{endpoint.url}: {exc}") from None
    return [
        Point(sample.name, sample.labels, sample.value)
        for samples in exposition.by_name.values()
        for sample in samples
    ]
