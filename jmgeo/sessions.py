"""Console sessions (部门控制台会话): sign in once with an API key, then a cookie.

A person signs in to the department console (``/console``) by pasting the department's
API key into a form (a POST body: keys never travel in URLs). The key is checked exactly
as ``jmgeo.auth`` checks a key in a header, and a server-side session row
(``console_session``, migration 0020) is written; the browser gets a cookie holding only a
random session id (32 bytes) — never the key — ``HttpOnly``, ``SameSite=Strict``,
``Path=/``, and ``Secure`` (and the ``__Host-`` name prefix) when the platform is served
over https (``JMGEO_PUBLIC_URL``). The database keeps only ``sha256(id)``.

Every request with the cookie is resolved (``resolve``: one indexed query joining the
key and its principal) to the key's own ``Caller`` — the same policy answers the API and
the pages. A session ends at sign-out (row deleted), ``JMGEO_SESSION_HOURS`` after
sign-in, after ``JMGEO_SESSION_IDLE_MINUTES`` without a request, and as soon as its key is
revoked or expires or its principal is disabled.

**CSRF.** A request authenticated by the cookie with an unsafe method (anything but GET,
HEAD, OPTIONS) must (``csrf_refusal``, called by ``jmgeo.http.AuthMiddleware``):

* come from the platform's own origin — ``Origin`` (or, without it, ``Referer``) equal to
  the public URL's origin or the request's own ``scheme://Host``; ``Sec-Fetch-Site:
  cross-site`` is refused outright;
* carry the session's synchroniser token, in the ``X-CSRF-Token`` header or, for an HTML
  form (``application/x-www-form-urlencoded``), the ``csrf_token`` field (the body is read
  here, at most 1 MB, and replayed to the route). A multipart body must use the header.

A refusal is a 403 (``CSRFRefused``) before any route runs. Requests that send a key in a
header are not cookie-authenticated and need no token (a foreign page cannot set those
headers without a CORS preflight, which ``jmgeo.web`` refuses).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from psycopg.rows import dict_row
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope

from jmgeo.auth import AuthError, caller_for_token, caller_of, key_usable
from jmgeo.db import connection
from jmgeo.errors import bilingual
from jmgeo.settings import get_settings
from layers import audit
from layers.policy import Caller

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
FORM_BODY_LIMIT = 1 << 20
# a session's last_seen is written at most this often (seconds): not one write per request
TOUCH_EVERY = 30.0

CSRF_REFUSED = bilingual(
    "请求被拒绝：跨站请求或缺少有效的 CSRF 令牌（请从控制台页面提交）",
    "request refused: cross-site request or missing/invalid CSRF token (submit it from "
    "the console's own pages; scripts send the X-CSRF-Token header)")


@dataclass(frozen=True)
class Session:
    """A live console session: who it stands for and its CSRF token."""

    id: int
    caller: Caller
    csrf_token: str
    expires_at: datetime


def cookie_name() -> str:
    """``__Host-jmgeo_session`` over https (the browser then insists on Secure, Path=/ and
    no Domain), ``jmgeo_session`` over plain http."""
    return "__Host-jmgeo_session" if get_settings().https else "jmgeo_session"


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def cookie_value(headers: Mapping[str, str]) -> str | None:
    """The session id the request's ``Cookie`` header carries, or None."""
    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # noqa: BLE001 — a malformed Cookie header is no session
        return None
    morsel = jar.get(cookie_name())
    value = morsel.value if morsel is not None else ""
    return value if 20 <= len(value) <= 100 else None


def set_cookie_header(sid: str) -> str:
    """The ``Set-Cookie`` value that gives the browser the session (no Max-Age: the
    server's clocks end it; the cookie goes when the browser closes)."""
    flags = "; Secure" if get_settings().https else ""
    return f"{cookie_name()}={sid}; Path=/; HttpOnly; SameSite=Strict{flags}"


def clear_cookie_header() -> str:
    flags = "; Secure" if get_settings().https else ""
    return (f"{cookie_name()}=; Path=/; HttpOnly; SameSite=Strict{flags}; Max-Age=0; "
            "Expires=Thu, 01 Jan 1970 00:00:00 GMT")


def _q(conn, query: str, params: Any = None):
    return conn.cursor(row_factory=dict_row).execute(query, params)


def start(token: str, *, user_agent: str | None = None,
          path: str = "/console/signin") -> tuple[str, Session]:
    """Sign in with an API key: ``(session id for the cookie, Session)``; ``AuthError``
    for a key ``jmgeo.auth`` would refuse. Audited (``console.signin``). Sync."""
    caller = caller_for_token(token.strip())
    settings = get_settings()
    sid = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(hours=settings.session_hours)
    with connection() as conn, conn.transaction():
        # housekeeping: sessions long past their end go (they could never be used again)
        _q(conn, "DELETE FROM console_session WHERE expires_at < now() - interval '1 day'")
        row = _q(conn, "INSERT INTO console_session (token_hash, key_id, csrf_token, "
                       "expires_at, user_agent) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                 (_hash(sid), caller.key_id, csrf, expires,
                  (user_agent or "")[:300] or None)).fetchone()
        audit.record(conn, action="console.signin", caller=caller,
                     request={"method": "POST", "path": path, "session": row["id"]})
    return sid, Session(id=row["id"], caller=caller, csrf_token=csrf, expires_at=expires)


def resolve(sid: str) -> Session | None:
    """The live session of this id, or None (unknown, ended, expired, idle too long, or
    its key unusable — such a row is deleted). Sync: one query, and a write at most
    every ``TOUCH_EVERY`` seconds of use."""
    settings = get_settings()
    with connection() as conn:
        row = _q(conn,
            "SELECT s.id AS session_id, s.csrf_token, s.last_seen, s.expires_at AS ends_at, "
            "now() AS now, k.id, k.expires_at, k.revoked_at, p.name, p.role, "
            "p.disabled_at, d.code AS dept_code FROM console_session s "
            "JOIN api_key k ON k.id = s.key_id JOIN principal p ON p.id = k.principal_id "
            "LEFT JOIN department d ON d.id = p.dept_id WHERE s.token_hash = %s",
            (_hash(sid),)).fetchone()
        if row is None:
            return None
        idle = row["now"] - row["last_seen"]
        if (row["ends_at"] <= row["now"] or not key_usable(row)
                or idle > timedelta(minutes=settings.session_idle_minutes)):
            _q(conn, "DELETE FROM console_session WHERE id = %s", (row["session_id"],))
            return None
        if idle.total_seconds() > TOUCH_EVERY:
            _q(conn, "UPDATE console_session SET last_seen = now() WHERE id = %s",
               (row["session_id"],))
    return Session(id=row["session_id"], caller=caller_of(row),
                   csrf_token=row["csrf_token"], expires_at=row["ends_at"])


def end(session: Session, path: str = "/console/signout") -> None:
    """Sign out: the row goes (the cookie is worthless from now on). Audited
    (``console.signout``). Sync."""
    with connection() as conn, conn.transaction():
        gone = _q(conn, "DELETE FROM console_session WHERE id = %s RETURNING id",
                  (session.id,)).fetchone()
        if gone is not None:
            audit.record(conn, action="console.signout", caller=session.caller,
                         request={"method": "POST", "path": path, "session": session.id})


def sign_in_error(exc: AuthError) -> str:
    """What the sign-in page says about a refused key (the same for every reason)."""
    return bilingual("密钥无效、已过期或已撤销，请检查后重试",
                     "the key is invalid, expired or revoked: check it and try again")


# -- CSRF -------------------------------------------------------------------------------

def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def own_origins(scope: Scope, headers: Headers) -> set[str]:
    """The platform's origins: its public URL's, and the request's own scheme://Host."""
    out = {_origin_of(get_settings().base_url)}
    host = headers.get("host")
    if host:
        out.add(f"{scope.get('scheme', 'http')}://{host}".lower())
    return {o for o in out if o}


def same_origin(scope: Scope, headers: Headers) -> bool:
    """Did a page of the platform itself send this? (``Origin``, else ``Referer``; a
    request with neither — not from a browser form or script — passes to the token.)"""
    if headers.get("sec-fetch-site", "").lower() == "cross-site":
        return False
    origin = headers.get("origin")
    if origin is None and headers.get("referer"):
        origin = _origin_of(headers["referer"]) or "null"
    if origin is None:
        return True
    return origin.strip().lower() in own_origins(scope, headers)


async def _buffered(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """Read the whole request body (None beyond ``limit``) and a ``receive`` replaying it."""
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None, receive
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, receive
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


async def csrf_refusal(scope: Scope, receive: Receive,
                       session: Session) -> tuple[bool, Receive]:
    """``(refused, receive)`` for an unsafe request authenticated by ``session`` (see
    the module docstring); pass the returned ``receive`` on — a form body read here is
    replayed from it."""
    headers = Headers(scope=scope)
    if not same_origin(scope, headers):
        return True, receive
    token = headers.get(CSRF_HEADER)
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if token is None and ctype == "application/x-www-form-urlencoded":
        body, receive = await _buffered(receive, FORM_BODY_LIMIT)
        if body is not None:
            values = parse_qs(body.decode("latin-1"), max_num_fields=1000)
            token = (values.get(CSRF_FIELD) or [None])[0]
    ok = token is not None and hmac.compare_digest(token.encode(), session.csrf_token.encode())
    return not ok, receive
