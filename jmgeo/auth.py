"""Authentication seam: who is calling? Every request passes through ``authenticate_headers``.

Credentials: ``Authorization: Bearer <token>``, ``X-API-Key: <token>``, or HTTP Basic
authentication with the token as the password and any user name (``Authorization: Basic
base64(user:token)``) — for desktop clients that can send nothing else (QGIS 3.22's
built-in Basic method). See ``layers.identity`` for the token format and how keys are
stored (sha256 only). The platform never challenges with ``Basic`` (its
``WWW-Authenticate`` says ``Bearer``), so browsers never prompt for, remember and replay
Basic credentials on other sites' behalf; clients send them preemptively.

* no credentials → anonymous (open data only);
* malformed, unknown, expired, revoked, or a disabled principal → ``AuthError`` (401);
* a valid key → a ``Caller`` with the principal's role and department;
* no credential headers but a console session cookie (``jmgeo.sessions``) → the same
  ``Caller`` as the session's key (:func:`authenticate_cookie`); an unsafe method must
  then pass the CSRF check (``jmgeo.sessions.csrf_refusal``, in the middleware).

Cost: one indexed query (``api_key.prefix`` is unique) per key per ``CACHE_TTL`` seconds;
the server (:func:`authenticate_headers`) runs that query in a worker thread, never on
the event loop, and a request whose key state is cached hops no thread at all.
The cache holds the stored hash and the key's state, never the token; the token is
hashed and compared (``hmac.compare_digest``) on every request, and expiry is checked
against the clock on every request. A revocation reaches this process at once (``forget``,
which ``layers.identity.revoke_key`` calls through its revocation hook) and every other
worker within ``CACHE_TTL`` (5 s) seconds.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool

from layers import identity
from layers.policy import ANONYMOUS, Caller

CACHE_TTL = 5.0
_MAX_CACHE = 4096
_cache: dict[str, tuple[float, dict | None]] = {}
_lock = threading.Lock()

MALFORMED = ("凭据格式无效 / malformed credentials: send 'Authorization: Bearer <key>', "
             "'X-API-Key: <key>', or HTTP Basic with the key as the password")
INVALID = "密钥无效、已过期或已撤销 / invalid, expired or revoked API key"


class AuthError(Exception):
    """Missing, malformed, expired or revoked credentials: answered with 401."""


def basic_password(value: str) -> str:
    """The password of HTTP Basic credentials (``base64(user:password)``, RFC 7617); the
    user name is ignored. ``AuthError`` when they do not decode."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise AuthError(MALFORMED) from exc
    _user, colon, password = decoded.partition(":")
    if not colon or not password.strip():
        raise AuthError(MALFORMED)
    return password


def credentials(headers: Mapping[str, str]) -> str | None:
    """The token the request's headers carry, None when they carry none. A Basic
    password is a token like any other: a wrong one answers the same 401 as a wrong key."""
    auth = headers.get("authorization")
    key = headers.get("x-api-key")
    if auth is not None:
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() == "basic" and token.strip():
            token = basic_password(token)
        elif scheme.lower() != "bearer" or not token.strip():
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


_MISS = object()


def _cached(prefix: str):
    """The cached key state of ``prefix`` (its row), or ``_MISS`` when it must be read
    from the database."""
    with _lock:
        hit = _cache.get(prefix)
    if hit is not None and time.monotonic() - hit[0] < CACHE_TTL:
        return hit[1]
    return _MISS


def _fetch(prefix: str) -> dict | None:
    """Read the key state from the database (the one query) and cache it."""
    from jmgeo.db import connection

    now = time.monotonic()
    with connection() as conn:
        row = identity.lookup(conn, prefix)
    if row is not None:  # unknown prefixes are not cached (nothing to revoke)
        with _lock:
            if len(_cache) >= _MAX_CACHE:
                _cache.clear()
            _cache[prefix] = (now, dict(row))
    return row


def _lookup(prefix: str) -> dict | None:
    hit = _cached(prefix)
    return _fetch(prefix) if hit is _MISS else hit


def _prefix(token: str) -> str:
    prefix = identity.parse_token(token)
    if prefix is None:
        raise AuthError(MALFORMED)
    return prefix


def key_usable(row: Mapping) -> bool:
    """Is the key state (``identity.lookup``'s columns) usable now: not revoked, not
    expired, its principal not disabled? Asked of every key and of every console session
    (a session lives only as long as its key)."""
    if row["revoked_at"] is not None or row["disabled_at"] is not None:
        return False
    return row["expires_at"] is None or row["expires_at"] > datetime.now(UTC)


def caller_of(row: Mapping) -> Caller:
    """THE caller a key stands for — the same whether the key came in a header or a
    console session made with it."""
    return Caller(kind=row["role"], dept_code=row["dept_code"], name=row["name"],
                  key_id=row["id"])


def _caller(token: str, row: dict | None) -> Caller:
    """Check the token against the stored key state; the caller, or ``AuthError``."""
    # hash and compare even when the prefix is unknown: same work either way
    stored = row["key_hash"] if row else "0" * 64
    ok = hmac.compare_digest(identity.hash_token(token), stored)
    if row is None or not ok or not key_usable(row):
        raise AuthError(INVALID)
    return caller_of(row)


def caller_for_token(token: str) -> Caller:
    """The caller a token stands for (blocking: may query the database)."""
    return _caller(token, _lookup(_prefix(token)))


async def authenticate_headers(headers: Mapping[str, str]) -> Caller:
    """The caller for these request headers (anonymous when no credentials are sent), on
    the event loop: a cache miss reads the key state in a worker thread."""
    token = credentials(headers)
    if token is None:
        return ANONYMOUS
    prefix = _prefix(token)
    row = _cached(prefix)
    if row is _MISS:
        row = await run_in_threadpool(_fetch, prefix)
    return _caller(token, row)


async def authenticate_cookie(path: str, headers: Mapping[str, str]):
    """The console session a request's cookie names (``jmgeo.sessions``): ``(caller,
    session, ended)``. No cookie (or a static file: no caller needed) → anonymous, no
    session; a cookie whose session is unknown, expired, idle too long or whose key is no
    longer usable → anonymous with ``ended`` True (the console then asks to sign in
    again). The lookup runs in a worker thread."""
    from jmgeo import sessions

    sid = sessions.cookie_value(headers)
    if sid is None or path.startswith("/static/"):
        return ANONYMOUS, None, False
    session = await run_in_threadpool(sessions.resolve, sid)
    if session is None:
        return ANONYMOUS, None, True
    return session.caller, session, False


identity.on_revoke(forget)  # a key revoked in this process is forgotten at once
