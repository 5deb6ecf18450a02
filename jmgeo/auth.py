"""Authentication seam: who is calling? Every request passes through ``authenticate``.

Credentials: ``Authorization: Bearer <token>`` or ``X-API-Key: <token>`` (see
``layers.identity`` for the token format and how keys are stored: sha256 only).

* no credentials → anonymous (open data only);
* malformed, unknown, expired, revoked, or a disabled principal → ``AuthError`` (401);
* a valid key → a ``Caller`` with the principal's role and department.

Cost: one indexed query (``api_key.prefix`` is unique) per key per ``CACHE_TTL`` seconds.
The cache holds the stored hash and the key's state, never the token; the token is
hashed and compared (``hmac.compare_digest``) on every request, and expiry is checked
against the clock on every request. A revocation reaches this process at once (``forget``)
and every other worker within ``CACHE_TTL`` (5 s) seconds.
"""

from __future__ import annotations

import hmac
import threading
import time
from datetime import UTC, datetime

from starlette.requests import Request

from layers.policy import ANONYMOUS, Caller

CACHE_TTL = 5.0
_MAX_CACHE = 4096
_cache: dict[str, tuple[float, dict | None]] = {}
_lock = threading.Lock()

MALFORMED = "凭据格式无效 / malformed credentials: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
INVALID = "密钥无效、已过期或已撤销 / invalid, expired or revoked API key"


class AuthError(Exception):
    """Missing, malformed, expired or revoked credentials: answered with 401."""


def credentials(request: Request) -> str | None:
    """The token the request carries, None when it carries none."""
    auth = request.headers.get("authorization")
    key = request.headers.get("x-api-key")
    if auth is not None:
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(MALFORMED)
        if key is not None and key.strip() != token.strip():
            raise AuthError(MALFORMED)
        return token.strip()
    if key is not None:
        if not key.strip():
            raise AuthError(MALFORMED)
        return key.strip()
    return None


def forget(prefix: str | None = None) -> None:
    """Drop cached key state (one prefix, or all)."""
    with _lock:
        if prefix is None:
            _cache.clear()
        else:
            _cache.pop(prefix, None)


def _lookup(prefix: str) -> dict | None:
    now = time.monotonic()
    with _lock:
        hit = _cache.get(prefix)
    if hit is not None and now - hit[0] < CACHE_TTL:
        return hit[1]
    from jmgeo.db import connection
    from layers.identity import lookup

    with connection() as conn:
        row = lookup(conn, prefix)
    if row is not None:  # unknown prefixes are not cached (nothing to revoke)
        with _lock:
            if len(_cache) >= _MAX_CACHE:
                _cache.clear()
            _cache[prefix] = (now, dict(row))
    return row


def caller_for_token(token: str) -> Caller:
    from layers.identity import hash_token, parse_token

    prefix = parse_token(token)
    if prefix is None:
        raise AuthError(MALFORMED)
    row = _lookup(prefix)
    # hash and compare even when the prefix is unknown: same work either way
    stored = row["key_hash"] if row else "0" * 64
    ok = hmac.compare_digest(hash_token(token), stored)
    if row is None or not ok:
        raise AuthError(INVALID)
    if row["revoked_at"] is not None or row["disabled_at"] is not None:
        raise AuthError(INVALID)
    if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
        raise AuthError(INVALID)
    return Caller(kind=row["role"], dept_code=row["dept_code"], name=row["name"],
                  key_id=row["id"])


def authenticate(request: Request) -> Caller:
    """Return the caller for this request (anonymous when no credentials are sent)."""
    token = credentials(request)
    if token is None:
        return ANONYMOUS
    return caller_for_token(token)
