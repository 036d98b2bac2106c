"""Basic auth against bcrypt hashes, without user enumeration and with failed-login limits.

- Every attempt that is not already verified costs one bcrypt check: against the user's hash,
  or, for an unknown user, against a dummy hash of the same cost, so the answer takes as long
  either way and the user list stays secret.
- A password bcrypt accepted is remembered (its SHA-256, one per configured user, so the cache
  is bounded by the config): bcrypt's deliberate slowness is paid once, not per scrape.
- Each client address (an IPv6 client's /64) has a token bucket of bcrypt checks: `burst`
  checks, refilled at `refill_per_s`; a success refunds its token. A client with an empty
  bucket is answered 429 at once, without bcrypt work. At most `max_clients` buckets are kept
  (least recently used dropped first), so memory stays bounded whatever the addresses.
- Passwords over 72 bytes (bcrypt's limit) are refused with 401 before any bcrypt work.

`precheck` runs on the event loop (microseconds); `verify` is the bcrypt part, for a worker
thread. Both are safe to call from different threads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from ...errors import ConfigError
from ...extras import LazyModule
from ...web_config import check_bcrypt_hash

__all__ = ["Attempt", "BasicAuth", "Outcome", "client_key"]

bcrypt = LazyModule("web", "basic auth (basic_auth_users in --web-config)")  # the web extra

#: bcrypt refuses passwords longer than this (bytes).
MAX_PASSWORD_BYTES = 72


class Outcome(Enum):
    ALLOW = "allow"  # no users configured, or credentials already verified
    DENY = "deny"  # 401: missing or malformed credentials
    LIMITED = "limited"  # 429: this client's failed-login budget is spent
    VERIFY = "verify"  # run `verify` (bcrypt) on a worker thread


@dataclass(frozen=True, slots=True)
class Attempt:
    """A bcrypt check to run: the user (known or not), the password and the hash to test."""

    user: str
    password: bytes
    hashed: bytes
    known: bool
    client: str


def client_key(host: str) -> str:
    """The rate-limit key of a client address: IPv4 as is, IPv6 by its /64 (one host owns a
    /64), an IPv4-mapped IPv6 address as its IPv4 address."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class BasicAuth:
    """Checks `Authorization: Basic` headers against `users` (user -> bcrypt hash)."""

    def __init__(
        self,
        users: Mapping[str, str],
        *,
        burst: int = 5,
        refill_per_s: float = 0.5,
        max_clients: int = 4096,
        checkpw: Callable[[bytes, bytes], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for user, hashed in users.items():
            problem = check_bcrypt_hash(hashed)
            if problem is not None:
                raise ConfigError(f"basic_auth_users.{user}", problem)
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self._burst = float(burst)
        self._refill = refill_per_s
        self._max_clients = max_clients
        self._checkpw = checkpw  # None: bcrypt's, imported on first use (the web extra)
        self._clock = clock
        self._lock = threading.Lock()
        self._verified: dict[str, bytes] = {}
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        cost = max((int(h[4:6]) for h in self._users.values()), default=4)
        #: Tested instead of a real hash for unknown users (same cost as the dearest user).
        self.dummy_hash = (
            bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(cost)) if users else b""
        )

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def precheck(self, header: str | None, client: str) -> tuple[Outcome, Attempt | None]:
        """Decide what a request's Authorization header needs, without bcrypt work."""
        if not self._users:
            return Outcome.ALLOW, None
        credentials = _decode(header)
        if credentials is None:
            return Outcome.DENY, None
        user, password = credentials
        if len(password) > MAX_PASSWORD_BYTES:
            return Outcome.DENY, None
        hashed = self._users.get(user)
        digest = hashlib.sha256(password).digest()
        with self._lock:
            known = self._verified.get(user) if hashed is not None else None
            if known is not None and hmac.compare_digest(known, digest):
                return Outcome.ALLOW, None
            if not self._take(client):
                return Outcome.LIMITED, None
        attempt = Attempt(user, password, hashed or self.dummy_hash, hashed is not None, client)
        return Outcome.VERIFY, attempt

    def verify(self, attempt: Attempt) -> bool:
        """The bcrypt check (tens of milliseconds at cost 10): True when the password is the
        user's. An unknown user's attempt runs against the dummy hash and is always False."""
        checkpw = self._checkpw if self._checkpw is not None else bcrypt.checkpw
        ok = checkpw(attempt.password, attempt.hashed) and attempt.known
        if ok:
            with self._lock:
                self._verified[attempt.user] = hashlib.sha256(attempt.password).digest()
                self._refund(attempt.client)
        return ok

    def _take(self, client: str) -> bool:
        """Take one token from `client`'s bucket (lock held); False when it is empty."""
        now = self._clock()
        tokens, stamp = self._buckets.pop(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - stamp) * self._refill)
        taken = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if taken else tokens, now)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return taken

    def _refund(self, client: str) -> None:
        if client in self._buckets:
            tokens, stamp = self._buckets[client]
            self._buckets[client] = (min(self._burst, tokens + 1.0), stamp)

    @property
    def tracked_clients(self) -> int:
        """How many client buckets are held (bounded by max_clients)."""
        return len(self._buckets)


def _decode(header: str | None) -> tuple[str, bytes] | None:
    """(user, password bytes) from a Basic Authorization header, or None when malformed."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    try:
        return user.decode(), password
    except UnicodeDecodeError:
        return None
