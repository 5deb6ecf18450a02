"""The request guard: what no route of the platform or of /ogc accepts, refused up front.

Pure ASGI (like ``jmgeo.http.AuthMiddleware``), before authentication, so a hostile value
never reaches a key lookup, a route, pygeoapi or SQL. It answers 400 in the envelope
``{"code", "description"}`` naming the parameter:

* a control character (NUL, U+0001–U+001F, DEL) in the path or in any query parameter's
  name or value — PostgreSQL text cannot hold NUL, and no name, code or filter of the
  platform contains one; the path parameter is named by matching the app's routes;
* a query string that is not UTF-8 once percent-decoded (``%ff``) — Starlette would
  silently turn it into U+FFFD and search for that;
* a query value longer than :data:`MAX_VALUE_CHARS` (a CQL2 filter that big is POSTed);
* an integer beyond 64 bits for a parameter that is an integer (those of the platform's
  OpenAPI document, ``offset`` / ``limit`` under /ogc, and integer path parameters):
  PostgreSQL's ``bigint`` would refuse it with an error deep in a query.

And the ``Host`` header: with ``JMGEO_ALLOWED_HOSTS`` set, a request naming another host
is refused (400 ``InvalidHost``). Links never come from ``Host`` in any case (they come
from ``JMGEO_PUBLIC_URL``, see ``jmgeo.settings.Settings.base_url``), so without the
setting an unknown host is merely ignored.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_to_bytes

from starlette.datastructures import Headers
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from jmgeo.errors import bilingual
from jmgeo.settings import get_settings

MAX_VALUE_CHARS = 65_536
INT64 = (-(2 ** 63), 2 ** 63 - 1)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_LONG_DIGITS = re.compile(r"\d{19,}")
# integer parameters of pygeoapi's routes (its own validation stops at int()); item ids
# are not among them: a table's key may be a long digit string
OGC_INTEGER_PARAMS = frozenset({"offset", "limit"})
OGC_INTEGER_PATH = frozenset({"z", "y", "x"})


class Refusal(Exception):
    """A request the guard refuses: status, code and the bilingual description."""

    def __init__(self, description: str, code: str = "InvalidParameterValue",
                 status: int = 400) -> None:
        super().__init__(description)
        self.description, self.code, self.status = description, code, status


LOGGER = logging.getLogger(__name__)


def _shown(value: str, limit: int = 40) -> str:
    """A value as an error may quote it: control characters escaped, cut short."""
    text = value.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit] + "…"


def check_value(name: str, value: str, integer: bool = False, where: str = "参数") -> None:
    """Refuse a control character, an over-long value or an out-of-range integer."""
    label_en = "parameter" if where == "参数" else "path segment"
    if _CONTROL.search(value):
        raise Refusal(bilingual(f"{where} {name}：含控制字符（如 NUL）",
                                f"{label_en} {name}: contains a control character "
                                "(NUL, U+0001-U+001F or DEL)"))
    if len(value) > MAX_VALUE_CHARS:
        raise Refusal(bilingual(f"{where} {name}：过长（最多 {MAX_VALUE_CHARS} 个字符）",
                                f"{label_en} {name}: longer than {MAX_VALUE_CHARS} "
                                "characters (send a large filter as a POST body)"))
    if integer and _INTEGER.match(value) and not INT64[0] <= int(value) <= INT64[1]:
        raise Refusal(bilingual(f"{where} {name}：整数超出范围（64 位）",
                                f"{label_en} {name}: integer out of range (64-bit): "
                                f"{_shown(value)}"))


def parse_query(raw: bytes) -> list[tuple[str, str]]:
    """The query string's (name, value) pairs, strictly UTF-8 (a 400 otherwise)."""
    pairs = []
    for part in raw.split(b"&"):
        if not part:
            continue
        name_b, _, value_b = part.partition(b"=")
        decoded = []
        for piece in (name_b, value_b):
            try:
                decoded.append(unquote_to_bytes(piece.replace(b"+", b" ")).decode("utf-8"))
            except UnicodeDecodeError:
                shown = name_b.decode("latin-1")[:40]
                raise Refusal(bilingual(f"参数 {shown}：不是有效的 UTF-8 编码",
                                        f"parameter {shown}: not valid UTF-8 once "
                                        "percent-decoded")) from None
        pairs.append((decoded[0], decoded[1]))
    return pairs


def _route_params(routes, scope: Scope) -> dict[str, str] | None:
    """The path parameters of the route the request goes to (None: no route)."""
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        params = dict(child.get("path_params") or {})
        if isinstance(route, Mount):
            inner = _route_params(route.routes, {**scope, **child})
            if inner is None:
                continue
            params.update(inner)
        return params
    return None


def _integer_params(app) -> frozenset[str]:
    """Names of the integer parameters of the platform's own OpenAPI document."""
    cached = getattr(app.state, "guard_integers", None) if app is not None else None
    if cached is not None:
        return cached
    names: set[str] = set()
    try:
        doc = app.openapi() if app is not None and hasattr(app, "openapi") else {}
    except Exception:  # noqa: BLE001 — a route whose schema cannot be made must not 500 all
        LOGGER.warning("request guard: the OpenAPI document could not be built; integer "
                       "parameters are checked by name only", exc_info=True)
        doc = {}
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            for param in op.get("parameters", []) if isinstance(op, dict) else []:
                schema = param.get("schema", {})
                types = {schema.get("type"), *(s.get("type") for s in schema.get("anyOf", []))}
                if "integer" in types:
                    names.add(param["name"])
    found = frozenset(names)
    if app is not None:
        app.state.guard_integers = found
    return found


def check_host(headers: Headers) -> None:
    """With ``JMGEO_ALLOWED_HOSTS`` set, a request must name one of them (or the public
    URL's host) in ``Host``: the answer would otherwise be cached or logged under it."""
    settings = get_settings()
    allowed = settings.allowed_host_names
    if not allowed:
        return
    host = headers.get("host", "").strip().lower()
    if host in allowed or host.rsplit(":", 1)[0] in allowed:
        return
    raise Refusal(bilingual("请求的主机名不在允许列表中", "the Host header names a host this "
                            "server does not serve (JMGEO_ALLOWED_HOSTS)"), code="InvalidHost")


def check_request(scope: Scope) -> None:
    """Every check of the module docstring, for one HTTP request (raises :class:`Refusal`)."""
    check_host(Headers(scope=scope))
    path: str = scope.get("path", "")
    ogc = path == "/ogc" or path.startswith("/ogc/")
    app = scope.get("app")
    if _CONTROL.search(path) or _LONG_DIGITS.search(path) or len(path) > MAX_VALUE_CHARS:
        params = _route_params(app.router.routes, scope) if app is not None else None
        if not params:
            check_value("path", path, where="路径")
        integers = _integer_params(app)
        for name, value in (params or {}).items():
            check_value(name, str(value), where="路径",
                        integer=name in (OGC_INTEGER_PATH if ogc else integers))
    integers = OGC_INTEGER_PARAMS if ogc else _integer_params(app)
    for name, value in parse_query(scope.get("query_string", b"")):
        check_value(_shown(name) if _CONTROL.search(name) else name, name)
        check_value(name, value, integer=name in integers)
        if ogc and name in integers and value and not _INTEGER.match(value):
            # pygeoapi reads `limit=true` as True, an int to Python: LIMIT true in SQL
            raise Refusal(bilingual(f"参数 {name}：应为整数", f"parameter {name}: expected "
                                    f"an integer, got {_shown(value)}"))


class RequestGuard:
    """ASGI middleware running :func:`check_request` on every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                check_request(scope)
            except Refusal as exc:
                from jmgeo.http import envelope

                extra = {"type": exc.code} if scope.get("path", "").startswith("/ogc") else {}
                await envelope(exc.status, exc.description, exc.code, None, **extra)(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)
