"""What browsers and web clients on other machines need from every response: CORS,
compression and, on every HTML page, a strict Content-Security-Policy. All are pure ASGI (like ``jmgeo.http.AuthMiddleware``): streamed downloads
and feeds pass through chunk by chunk, and nothing is buffered but a first chunk.

**CORS** (:class:`CORSMiddleware`). A platform with credentials cannot answer every
origin alike, so there are two tiers:

* the origins the operator trusts (``JMGEO_CORS_ORIGINS``): their pages may send an API
  key (``Authorization``, ``X-API-Key``) and use every method; the answer names the
  origin and ``Access-Control-Allow-Credentials: true``;
* any other origin (unless ``JMGEO_CORS_ANONYMOUS=0``): anonymous ``GET``/``HEAD`` only,
  answered ``Access-Control-Allow-Origin: *`` without credentials — open data, the same
  for everybody. A request from such an origin that carries a key gets no CORS header
  (its page cannot read the answer), and a preflight asking for a key header, or for a
  method other than GET/HEAD, is refused (403, no CORS header).

Preflights are answered here (204) before authentication. With trusted origins
configured, the headers depend on the request's ``Origin``, so every response says
``Vary: Origin``; without, they do not (the ``*`` goes to every anonymous GET, with or
without ``Origin``) and no ``Vary: Origin`` is added. ``Cache-Control`` is never touched:
private answers stay ``private, no-store``.

**Compression** (:class:`Compression`): gzip for the formats that shrink — JSON,
GeoJSON, JSON-FG, OpenAPI, NDJSON, CSV, HTML, XML and Mapbox vector tiles — when the
request accepts gzip and the body is at least ``JMGEO_GZIP_MIN_BYTES``. Every response of
a compressible type says ``Vary: Accept-Encoding``. Byte-range semantics are kept: a
``206``, a response with ``Content-Range`` or one that offers ``Accept-Ranges: bytes`` (a
file a client may resume) is sent as its bytes, so ranges always address the identity
body. A compressed response's strong ``ETag`` becomes weak (``W/"…"``, the gzip bytes
are another representation); validators compare ``If-None-Match`` weakly (RFC 9110
§13.1.2), so a revalidation still answers 304.

**Page security** (:class:`PageSecurity`). The platform runs on an offline government
network and serves every script, style, font and image itself, so every HTML response
(``text/html``: Swagger UI, pygeoapi's pages, the portal) carries a
``Content-Security-Policy`` that allows nothing but the platform's own origin
(:data:`CONTENT_SECURITY_POLICY`: no inline script or style, no ``eval``, no frames of
it elsewhere), plus ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy``. A page
that loads something from a CDN, or runs an inline script, is refused by the browser —
and the browser tests see the refusal. Non-HTML responses are left as they are.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable

import anyio.to_thread
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jmgeo.errors import bilingual

# -- CORS ---------------------------------------------------------------------------

SAFE_METHODS = ("GET", "HEAD")
TRUSTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# request headers a page may send: any origin (no credentials) / a trusted origin
ANONYMOUS_HEADERS = ("accept", "accept-language", "content-language", "content-type",
                     "range", "if-range", "if-none-match", "if-modified-since")
CREDENTIAL_HEADERS = ("authorization", "x-api-key")
TRUSTED_HEADERS = (*ANONYMOUS_HEADERS, "if-match", "if-unmodified-since",
                   *CREDENTIAL_HEADERS)
# response headers a page may read beyond the CORS-safelisted ones
EXPOSED_HEADERS = ("Content-Crs", "Link", "ETag", "Location", "Retry-After",
                   "Jmgeo-From-Version", "Jmgeo-To-Version", "Jmgeo-Full",
                   "Content-Disposition", "Content-Range", "Accept-Ranges",
                   "WWW-Authenticate")
PREFLIGHT_REFUSED = bilingual(
    "跨域请求不被允许：该来源只能匿名读取（GET/HEAD，不带密钥）",
    "cross-origin request refused: this origin may only make anonymous GET/HEAD requests "
    "(no API key); the operator lists trusted origins in JMGEO_CORS_ORIGINS")


class CORSMiddleware:
    """Cross-origin access in two tiers (see the module docstring): ``origins`` may send
    credentials; any other origin, when ``anonymous``, may make anonymous GET/HEAD."""

    def __init__(self, app: ASGIApp, origins: Iterable[str] = (), anonymous: bool = True,
                 max_age: int = 600) -> None:
        self.app = app
        self.origins = frozenset(o.rstrip("/").lower() for o in origins)
        self.anonymous = anonymous
        self.max_age = max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        method = scope["method"].upper()
        if (method == "OPTIONS" and origin is not None
                and "access-control-request-method" in headers):
            await self._preflight(origin, headers, scope, receive, send)
            return
        added = self._response_headers(origin, method, headers)
        if not added:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                out = MutableHeaders(scope=message)
                for name, value in added.items():
                    if name == "Vary":
                        out.add_vary_header(value)
                    else:
                        out[name] = value
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _trusted(self, origin: str | None) -> bool:
        return origin is not None and origin.rstrip("/").lower() in self.origins

    def _response_headers(self, origin: str | None, method: str,
                          headers: Headers) -> dict[str, str]:
        """The CORS headers of an actual (not preflight) response."""
        out: dict[str, str] = {"Vary": "Origin"} if self.origins else {}
        if self._trusted(origin):
            out.update({"Access-Control-Allow-Origin": origin,
                        "Access-Control-Allow-Credentials": "true"})
        elif (self.anonymous and method in SAFE_METHODS
              and not any(h in headers for h in CREDENTIAL_HEADERS)):
            out["Access-Control-Allow-Origin"] = "*"
        else:
            return out
        out["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
        return out

    async def _preflight(self, origin: str, headers: Headers, scope: Scope,
                         receive: Receive, send: Send) -> None:
        from jmgeo.http import envelope

        asked_method = headers["access-control-request-method"].strip().upper()
        asked_headers = {h.strip().lower() for h in
                         headers.get("access-control-request-headers", "").split(",")
                         if h.strip()}
        trusted = self._trusted(origin)
        if trusted:
            methods, allowed = TRUSTED_METHODS, TRUSTED_HEADERS
        elif self.anonymous:
            methods, allowed = SAFE_METHODS, ANONYMOUS_HEADERS
        else:
            methods, allowed = (), ()
        vary = {"Vary": "Origin, Access-Control-Request-Method, "
                        "Access-Control-Request-Headers"}
        if asked_method not in methods or not asked_headers <= set(allowed):
            await envelope(403, PREFLIGHT_REFUSED, None, vary)(scope, receive, send)
            return
        answer = {**vary,
                  "Access-Control-Allow-Origin": origin if trusted else "*",
                  "Access-Control-Allow-Methods": ", ".join(methods),
                  "Access-Control-Allow-Headers": ", ".join(allowed),
                  "Access-Control-Max-Age": str(self.max_age)}
        if trusted:
            answer["Access-Control-Allow-Credentials"] = "true"
        await send({"type": "http.response.start", "status": 204,
                    "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                                for k, v in answer.items()]})
        await send({"type": "http.response.body", "body": b""})


# -- page security --------------------------------------------------------------------

#: The policy of every HTML page: the platform's own origin only. ``data:``/``blob:``
#: images (Bootstrap's and Leaflet's inline SVG icons, MapLibre's sprites and canvases)
#: and ``blob:`` workers (MapLibre) are the exceptions a map needs; no inline script or
#: style anywhere (pages keep theirs in files under /static).
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
))
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def is_html(content_type: str | None) -> bool:
    return (content_type or "").partition(";")[0].strip().lower() == "text/html"


class PageSecurity:
    """Add :data:`PAGE_HEADERS` to every ``text/html`` response (a header a route set
    itself is kept: a page may only be stricter)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                if is_html(headers.get("content-type")):
                    for name, value in PAGE_HEADERS.items():
                        if name not in headers:
                            headers[name] = value
            await send(message)

        await self.app(scope, receive, send_secured)


# -- compression ----------------------------------------------------------------------

COMPRESSIBLE = re.compile(
    r"^(application/(json|[\w.\-]+\+json|x-ndjson|geo\+json-seq|xml|[\w.\-]+\+xml"
    r"|vnd\.mapbox-vector-tile|x-protobuf|javascript)|text/[\w.\-+]+)$")
NOT_COMPRESSED = ("text/event-stream",)  # a live stream: a compressor would hold it back
THREAD_MIN_BYTES = 128 * 1024  # bigger chunks are compressed off the event loop


def compressible(content_type: str | None) -> bool:
    """Whether a response of this media type is worth gzip (text, JSON, MVT …)."""
    media = (content_type or "").partition(";")[0].strip().lower()
    return bool(COMPRESSIBLE.match(media)) and media not in NOT_COMPRESSED


def accepts_gzip(accept_encoding: str) -> bool:
    """``Accept-Encoding`` allows gzip (``gzip``, ``x-gzip`` or ``*``, q > 0)."""
    verdict: dict[str, bool] = {}
    for part in accept_encoding.lower().split(","):
        token, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if token:
            verdict[token.strip()] = q > 0
    if "gzip" in verdict:
        return verdict["gzip"]
    return verdict.get("x-gzip", verdict.get("*", False))


def weak_etag(etag: str) -> str:
    return etag if etag.startswith("W/") else f"W/{etag}"


class Compression:
    """gzip for compressible responses (see the module docstring), streaming-safe: each
    chunk goes through one compressor; chunks it holds back come with the next."""

    def __init__(self, app: ASGIApp, level: int = 6, min_bytes: int = 500) -> None:
        self.app = app
        self.level = level
        self.min_bytes = min_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.level <= 0:
            await self.app(scope, receive, send)
            return
        request = Headers(scope=scope)
        wanted = (scope["method"].upper() != "HEAD"
                  and accepts_gzip(request.get("accept-encoding", "")))
        state: dict = {"start": None, "compressor": None}

        async def send_compressed(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                headers = Headers(raw=message.setdefault("headers", []))
                if self._eligible(message["status"], headers):
                    MutableHeaders(scope=message).add_vary_header("Accept-Encoding")
                    if wanted:
                        state["start"] = message  # decided by the first body chunk
                        return
                await send(message)
            elif kind == "http.response.body" and state["start"] is not None:
                start, state["start"] = state["start"], None
                body = message.get("body", b"")
                more = message.get("more_body", False)
                if not more and len(body) < self.min_bytes:
                    await send(start)
                    await send(message)
                    return
                state["compressor"] = zlib.compressobj(self.level, zlib.DEFLATED,
                                                       16 + zlib.MAX_WBITS)
                out = MutableHeaders(scope=start)
                out["Content-Encoding"] = "gzip"
                if "etag" in out:
                    out["ETag"] = weak_etag(out["etag"])
                del out["Content-Length"]
                data = await self._compress(state["compressor"], body, more)
                if not more:
                    out["Content-Length"] = str(len(data))
                await send(start)
                await send({"type": "http.response.body", "body": data, "more_body": more})
            elif kind == "http.response.body" and state["compressor"] is not None:
                more = message.get("more_body", False)
                data = await self._compress(state["compressor"], message.get("body", b""),
                                            more)
                if data or not more:
                    await send({"type": "http.response.body", "body": data,
                                "more_body": more})
            else:
                if state["start"] is not None:  # e.g. pathsend: never compressed
                    start, state["start"] = state["start"], None
                    await send(start)
                await send(message)

        await self.app(scope, receive, send_compressed)

    @staticmethod
    def _eligible(status: int, headers: Headers) -> bool:
        """A response whose body may be gzipped: a compressible type with a full body
        that is not already encoded and not offered by byte ranges."""
        if status < 200 or status in (204, 206, 304):
            return False
        if "content-encoding" in headers or "content-range" in headers:
            return False
        if headers.get("accept-ranges", "").strip().lower() == "bytes":
            return False
        return compressible(headers.get("content-type"))

    @staticmethod
    async def _compress(compressor, body: bytes, more: bool) -> bytes:
        def run() -> bytes:
            data = compressor.compress(body)
            return data if more else data + compressor.flush()

        if len(body) >= THREAD_MIN_BYTES:
            return await anyio.to_thread.run_sync(run)
        return run()


def install_web(app, settings) -> None:
    """Add page security, compression and CORS around everything (authentication
    included: a 401 is readable by a trusted page and compressed like any JSON)."""
    app.add_middleware(PageSecurity)
    app.add_middleware(Compression, level=settings.gzip_level,
                       min_bytes=settings.gzip_min_bytes)
    app.add_middleware(CORSMiddleware, origins=settings.cors_origins,
                       anonymous=settings.cors_anonymous, max_age=settings.cors_max_age)
