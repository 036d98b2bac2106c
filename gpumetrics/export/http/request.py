"""HTTP/1.x request heads and responses: a strict parser for the little a scrape target
needs (GET and HEAD without bodies) and the response encoder.

A head is at most `MAX_HEAD_BYTES`; anything malformed is a `BadRequestError` carrying its status
(400, 431, 505), never a traceback or a dropped connection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

__all__ = [
    "MAX_HEAD_BYTES",
    "BadRequestError",
    "Request",
    "Response",
    "accepts_gzip",
    "encode_head",
    "parse_head",
]

#: Largest request line + headers accepted (bytes); Prometheus sends about 300.
MAX_HEAD_BYTES = 16384

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SINGLE = ("host", "content-length", "authorization", "transfer-encoding")


class BadRequestError(Exception):
    """A request the front answers with `status` and then closes the connection."""

    def __init__(self, status: int, problem: str) -> None:
        super().__init__(problem)
        self.status = status
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request head. Header names are lower-case; `has_body` is True when the
    client announced a body (Content-Length > 0 or Transfer-Encoding), which is never read."""

    method: str
    path: str
    version: str
    headers: Mapping[str, str]
    keep_alive: bool
    has_body: bool


@dataclass(frozen=True, slots=True)
class Response:
    """What the front writes back: status, body and headers (Content-Length is added)."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False


def parse_head(head: bytes) -> Request:
    """Parse a request line and headers (without the blank line that ends them)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequestError(400, "undecodable head") from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
        raise BadRequestError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if re.fullmatch(r"HTTP/\d\.\d", version):
            raise BadRequestError(505, "only HTTP/1.0 and HTTP/1.1 are served")
        raise BadRequestError(400, "malformed HTTP version")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):  # also refuses obs-fold (leading space)
            raise BadRequestError(400, "malformed header line")
        key = name.lower()
        value = value.strip(" \t")
        if key in headers:
            if key in _SINGLE:
                raise BadRequestError(400, f"repeated {name} header")
            headers[key] = f"{headers[key]}, {value}"
        else:
            headers[key] = value
    if version == "HTTP/1.1" and "host" not in headers:
        raise BadRequestError(400, "HTTP/1.1 request without a Host header")
    length = headers.get("content-length", "0")
    if not length.isdigit():
        raise BadRequestError(400, "malformed Content-Length")
    has_body = int(length) > 0 or "transfer-encoding" in headers
    if "content-length" in headers and "transfer-encoding" in headers:
        raise BadRequestError(400, "both Content-Length and Transfer-Encoding")
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep_alive = "close" not in tokens and (version == "HTTP/1.1" or "keep-alive" in tokens)
    return Request(method, _path(target), version, headers, keep_alive, has_body)


def _path(target: str) -> str:
    """The path of an origin-form (`/metrics?x`) or absolute-form (`http://h/metrics`) target."""
    if target.startswith(("http://", "https://")):
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    if not target.startswith("/"):
        raise BadRequestError(400, "malformed request target")
    return target.split("?", 1)[0].split("#", 1)[0]


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True when an Accept-Encoding header lists gzip (or x-gzip) with a non-zero q-value."""
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip"):
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0.0:
            return True
    return False


def encode_head(response: Response, *, keep_alive: bool, extra: Mapping[str, str]) -> bytes:
    """The status line and headers of `response`, ending with the blank line."""
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Date: {formatdate(usegmt=True)}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
    ]
    lines += [f"{name}: {value}" for name, value in response.headers]
    lines += [f"{name}: {value}" for name, value in extra.items()]
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
