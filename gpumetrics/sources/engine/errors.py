"""The one error the engine source raises, and its codes.

The Sampler reads `code` (`pipeline.error_code`) and counts it in
`gpumetrics_source_errors_total{source="engine:<name>",code=...}`; the message says what happened
in words a user can act on.
"""

from __future__ import annotations

from typing import Final

from ...errors import GpumetricsError

__all__ = [
    "CONNECTION",
    "CONNECTION_REFUSED",
    "CONNECTION_RESET",
    "DNS",
    "INVALID_SERIES",
    "PARSE",
    "PROTOCOL",
    "TIMEOUT",
    "TLS",
    "TOO_LARGE",
    "UNKNOWN_KIND",
    "UNSUPPORTED_ENCODING",
    "EngineError",
    "http_code",
]

#: The whole exchange (connect, request, headers, body) took longer than `timeout_s`.
TIMEOUT: Final = "timeout"
#: The body is longer than `max_bytes` (by Content-Length, or while reading it).
TOO_LARGE: Final = "too_large"
#: Not Prometheus text: garbage, invalid UTF-8, a body cut short, no final newline.
PARSE: Final = "parse"
#: Nothing listens on the engine's port (engine down or restarting).
CONNECTION_REFUSED: Final = "connection_refused"
#: The engine closed the connection before the response was complete.
CONNECTION_RESET: Final = "connection_reset"
#: The host name does not resolve.
DNS: Final = "dns"
#: The TLS handshake or a TLS record failed (https URLs).
TLS: Final = "tls"
#: The peer did not speak HTTP/1.x (bad status line, header too long, ...).
PROTOCOL: Final = "protocol"
#: Any other network failure (host unreachable, ...).
CONNECTION: Final = "connection"
#: The body came in a Content-Encoding other than identity (we ask for identity).
UNSUPPORTED_ENCODING: Final = "unsupported_encoding"
#: kind="auto" and no series has a prefix of a known engine.
UNKNOWN_KIND: Final = "unknown_kind"
#: Partial error (never raised): one histogram of an otherwise valid exposition is
#: inconsistent (non-cumulative buckets, missing `_sum`, bad `le`); it is skipped.
INVALID_SERIES: Final = "invalid_series"


def http_code(status: int) -> str:
    """The code for a non-200 HTTP status: "http_503"."""
    return f"http_{status}"


class EngineError(GpumetricsError):
    """Scraping or reading one engine's /metrics failed; `code` is one of this module's codes."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)
