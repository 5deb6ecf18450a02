"""The typed HTTP seam: who is calling, which resource, and one error envelope.

Every platform route takes its caller from :data:`CallerDep` (what the authentication
middleware put on the request) and a resource it names in its path or query from a
``visible_resource`` dependency: the resource is resolved through
``layers.policy.access_for`` *before the route runs*, and a resource the caller may not
see answers exactly like one that does not exist — the standard 404 body, which never
echoes the name. Routes therefore start with a typed :class:`VisibleResource` (registry
row + :class:`~layers.policy.Access`) and never re-state the rule.

Every error of every route has one shape, ``{"code": ..., "description": "中文 / English"}``
(extra members such as ``errors`` may follow): FastAPI's validation errors (the
parameter named, what is wrong, Chinese first), Starlette's HTTPException (unknown route
404, 405), HTTPException raised by routes, :class:`jmgeo.errors.UserError` (400 with its
message and ``code``), :class:`jmgeo.db.DatabaseUnavailable` (503) and anything else (500,
logged, no traceback). The OGC routes under ``/ogc`` answer pygeoapi's own
``{code, type, description}`` from ``jmgeo.ogc.router``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from jmgeo import sessions
from jmgeo.auth import AuthError, authenticate_cookie, authenticate_headers
from jmgeo.db import DatabaseUnavailable, connection
from jmgeo.errors import UserError, bilingual
from jmgeo.replicas import read_connection
from layers.policy import ANONYMOUS, Access, Caller, access_row, lookup
from layers.registry import LAYER_NAME_RE

LOGGER = logging.getLogger("jmgeo")

NOT_FOUND = bilingual("资源不存在", "no such resource")
# what a data answer depends on besides the URL: the credentials (a key header, or the
# console's session cookie), so no cache answers one caller with another's copy
VARY_CALLER = "Authorization, X-API-Key, Cookie"
UNAVAILABLE = bilingual("数据库暂不可用，请稍后重试", "database temporarily unavailable, retry later")
INTERNAL = bilingual("内部错误，已记录", "internal error, logged")
AUTH_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="jmgeo"'}

# the envelope's code per status (OGC API spellings where OGC has one)
CODES = {400: "InvalidParameterValue", 401: "Unauthorized", 403: "Forbidden",
         404: "NotFound", 405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict",
         413: "PayloadTooLarge", 415: "UnsupportedMediaType",
         422: "InvalidParameterValue", 500: "InternalError", 503: "ServiceUnavailable"}
# what an HTTPException raised without a message (Starlette's English phrase) says
DEFAULT_DESCRIPTIONS = {
    400: bilingual("请求无效", "bad request"),
    401: bilingual("需要认证", "authentication required"),
    403: bilingual("无权访问", "forbidden"),
    404: NOT_FOUND,
    405: bilingual("不支持该请求方法", "method not allowed (see the Allow header)"),
    406: bilingual("无法提供所请求的格式", "the requested representation is not available"),
    413: bilingual("请求体过大", "request body too large"),
    415: bilingual("不支持的内容类型", "unsupported media type"),
    500: INTERNAL,
    503: UNAVAILABLE,
}


def envelope(status_code: int, description: str, code: str | None = None,
             headers: Mapping[str, str] | None = None, /, **extra: Any) -> JSONResponse:
    """THE error response of the platform routes: ``{"code", "description", …extra}``
    (``extra`` members may be named anything, ``status`` too: the first four are
    positional)."""
    code = code or CODES.get(status_code) or HTTPStatus(status_code).phrase.replace(" ", "")
    return JSONResponse({"code": code, "description": description, **extra},
                        status_code=status_code, headers=dict(headers) if headers else None)


# -- the caller ---------------------------------------------------------------------

def current_caller(request: Request) -> Caller:
    """The caller :class:`AuthMiddleware` authenticated. Anonymous — the least right —
    if the middleware did not run (an app assembled without it fails closed)."""
    return getattr(request.state, "caller", None) or ANONYMOUS


CallerDep = Annotated[Caller, Depends(current_caller)]


def require_authenticated(caller: CallerDep) -> Caller:
    """The caller, if authenticated — THE 401 of the routes that are never public (the
    exchange's requests, subscriptions, receipts, jobs, deliveries), with the challenge."""
    if caller.kind == "anonymous":
        raise HTTPException(401, bilingual("需要部门或机构凭据（API 密钥）",
                                           "this needs credentials (an API key)"),
                            headers=AUTH_CHALLENGE)
    return caller


def require_writer(caller: Annotated[Caller, Depends(require_authenticated)]) -> Caller:
    """The caller, if it may change anything: the auditor supervises read-only (403)."""
    if caller.can_read_audit:
        raise HTTPException(403, bilingual("审计员只读，不能提交、答复或更改",
                                           "the auditor role is read-only: it cannot file, "
                                           "answer or change anything"))
    return caller


ReaderDep = Annotated[Caller, Depends(require_authenticated)]
WriterDep = Annotated[Caller, Depends(require_writer)]


# -- a resource the caller may see ----------------------------------------------------

@dataclass(frozen=True)
class VisibleResource:
    """A registry resource (vector layer, raster layer or table) with the caller's access:
    what a route gets after the policy said yes."""

    row: Mapping[str, Any]  # policy.LAYER_QUERY's columns (name, kind, table_name, …)
    access: Access

    @property
    def name(self) -> str:
        return self.row["name"]

    @property
    def kind(self) -> str:
        return self.row["kind"]

    @property
    def table_name(self) -> str:
        return self.row["table_name"]


class ResourceNotFound(StarletteHTTPException):
    """Absent and hidden resources alike: the standard 404, the name not echoed."""

    def __init__(self) -> None:
        super().__init__(404, NOT_FOUND)


def resolve_resource(caller: Caller, name: str, request: Request | None = None
                     ) -> VisibleResource:
    """The resource ``name`` as ``caller`` may have it, or :class:`ResourceNotFound`. A
    department refused a resource it may only see in the catalog is audited
    (:func:`audit_refusal`) and answers the same 404."""
    if not LAYER_NAME_RE.match(name):  # no registry name looks otherwise (NUL bytes …)
        raise ResourceNotFound()
    # a GET's read scope may answer from a replica; the route may then read the data
    # from it too or from the primary, which is ahead of it (jmgeo.replicas)
    with read_connection() as conn:
        row, access = lookup(conn, caller, name)
    if access is None:
        if row is not None and request is not None:
            audit_refusal(caller, name, "http", request.url.path, request.url.query,
                          request.method, row=row)
        raise ResourceNotFound()
    return VisibleResource(row=row, access=access)


AUDIT_DOWN = bilingual("审计记录失败，数据未发送", "audit unavailable, data withheld")


def audit_or_503(caller: Caller, access: Access, action: str, request: Request,
                 rows: int | None,
                 status: int = 200, records=None) -> JSONResponse | None:
    """THE guard of the platform routes that hand out data: audit a non-open access before
    any data leaves — no audit row, no data (the 503 envelope, returned for the route to
    answer). None when the access is open or the row was written. (The OGC router has
    its own, for pygeoapi's responses.) ``records``: which records go out, for the
    record-level log of a resource that keeps one (``layers.record_log``)."""
    if not access.audited:
        return None
    from layers.audit import record_access

    try:
        record_access(caller, access, action, request.url.path, request.url.query,
                      rows=rows, status=status, method=request.method, records=records)
    except Exception:  # noqa: BLE001 — no audit row, no data
        LOGGER.exception("audit write failed for %s %s", action, request.url.path)
        return envelope(503, AUDIT_DOWN)
    return None


_QUERY_COUNTER: list = []  # the process's exchange.deliveries.QueryCounter, made once


def _query_counter():
    if not _QUERY_COUNTER:
        from exchange.deliveries import QueryCounter
        from jmgeo.settings import get_settings

        every = get_settings().query_count_every
        _QUERY_COUNTER.append(QueryCounter(max_age=every) if every > 0 else None)
    return _QUERY_COUNTER[0]


def flush_deliveries() -> None:
    """Write the online queries counted so far (at shutdown; a reader in this process)."""
    counter = _query_counter()
    if counter is None:
        return
    batch = counter.take()
    if batch:
        with connection() as conn:
            counter.write(conn, batch)


def count_delivery(caller: Caller, access: Access, mode: str, rows: int, nbytes: int,
                   detail: str | None = None) -> None:
    """THE after-data hook of the platform routes: count one delivery
    (``exchange.deliveries.record``) once the data has left — after the stream's last
    chunk, or as the response's background task. Online queries are counted in batches
    (``exchange.deliveries.QueryCounter``). Never raises: the data is delivered."""
    from exchange import deliveries

    counter = _query_counter() if mode == "query" else None
    if counter is not None:
        batch = counter.add(layer=access.layer, dept=caller.data_dept, rows=rows,
                            nbytes=nbytes, request_id=access.request_id)
        if batch:
            try:
                with connection() as conn:
                    counter.write(conn, batch)
            except Exception:  # noqa: BLE001 — a failed count never undoes a delivery
                LOGGER.exception("query delivery count failed")
        return
    try:
        with connection() as conn:
            deliveries.record(conn, layer=access.layer, dept=caller.data_dept, mode=mode,
                              rows=rows, nbytes=nbytes, request_id=access.request_id,
                              detail=detail)
    except Exception:  # noqa: BLE001 — a failed count never undoes a delivery
        LOGGER.exception("delivery count failed for %s (%s)", access.layer, mode)


def audit_refusal(caller: Caller, name: str, way: str, path: str, query: str = "",
                  method: str = "GET", row: dict | None = None) -> None:
    """THE call site of refused-access auditing for every way out (the platform routes'
    ``visible_resource`` and the OGC router's collection lookup): writes an audit row
    ``action="refused"`` when an authenticated department is refused a resource it may
    see in the catalog. ``row``: the registry row the policy refused (from
    ``layers.policy.lookup``); without it (the OGC router, whose audience already left the
    resource out) the row is read once. Sync: call it from a worker thread. A failed write is logged, not answered: the response stays the standard
    404 (a 503 here would tell the caller the resource exists)."""
    if caller.data_dept is None or not LAYER_NAME_RE.match(name):
        return  # anonymous, auditor, a name no resource has: nothing to record, no query
    from layers.audit import record_refusal

    try:
        if row is None:  # read where the audience was read (a replica may lag)
            with read_connection() as conn:
                row = access_row(conn, name)
            if row is None:
                return  # no such resource: nothing was refused
        record_refusal(caller, row, way, path, query, method)
    except Exception:  # noqa: BLE001 — the 404 stands; the failure is logged
        LOGGER.exception("audit of a refused access to %r failed", name)


def visible_resource(param: str = "layer", where: Literal["path", "query"] = "path",
                     description: str = "resource (collection) name") -> Any:
    """A dependency resolving the path or query parameter ``param`` to a
    :class:`VisibleResource` before the route runs (404 otherwise). The parameter is
    declared under its own name, so it is documented and validated like any other; a
    sync dependency: FastAPI runs its registry query in a worker thread."""
    spec = Path(description=description) if where == "path" else \
        Query(..., description=description)

    def dependency(request: Request, caller: Caller, **values: str) -> VisibleResource:
        return resolve_resource(caller, values[param], request)

    dependency.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request),
        inspect.Parameter("caller", inspect.Parameter.KEYWORD_ONLY, annotation=CallerDep),
        inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY,
                          annotation=Annotated[str, spec])])
    dependency.__name__ = f"visible_resource_{where}_{param}"
    return Depends(dependency)


LayerInPath = Annotated[VisibleResource, visible_resource("layer")]
NameInPath = Annotated[VisibleResource, visible_resource("name")]
LayerInQuery = Annotated[VisibleResource, visible_resource("layer", "query",
                                                           "layer (collection) name")]


# -- validation errors, in the envelope -------------------------------------------------

def _zh_reason(err: Mapping[str, Any]) -> str:
    """What is wrong, in Chinese, from a pydantic error (type + ctx)."""
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "缺少必填项"
    if kind.startswith("float_"):
        return "应为数字"
    if kind.startswith("int_"):
        return "应为整数"
    if kind.startswith("bool_"):
        return "应为 true 或 false"
    if kind.startswith("datetime_"):
        return "应为 ISO 8601 时间，如 2025-01-31T08:00:00+08:00"
    if kind.startswith("date_"):
        return "应为日期，如 2025-01-31"
    simple = {
        "greater_than_equal": f"应不小于 {ctx.get('ge')}",
        "less_than_equal": f"应不大于 {ctx.get('le')}",
        "greater_than": f"应大于 {ctx.get('gt')}",
        "less_than": f"应小于 {ctx.get('lt')}",
        "string_too_long": f"长度不能超过 {ctx.get('max_length')} 个字符",
        "string_too_short": f"长度不能少于 {ctx.get('min_length')} 个字符",
        "too_long": f"最多 {ctx.get('max_length')} 项",
        "too_short": f"至少 {ctx.get('min_length')} 项",
        "literal_error": f"应为以下之一：{ctx.get('expected')}",
        "enum": f"应为以下之一：{ctx.get('expected')}",
        "extra_forbidden": "不是可接受的字段",
        "json_invalid": "不是有效的 JSON",
        "dict_type": "应为 JSON 对象",
        "model_type": "应为 JSON 对象",
        "model_attributes_type": "应为 JSON 对象",
        "list_type": "应为列表",
        "string_type": "应为文本",
    }
    return simple.get(kind, "取值无效")


def _where(loc: tuple[Any, ...]) -> tuple[str, str, str]:
    """(source, name, zh label) of an error location: ('query', 'lon', '参数')."""
    source = str(loc[0]) if loc else "body"
    rest = loc[1:] if loc and loc[0] in ("query", "path", "header", "cookie", "body") else loc
    name = ""
    for part in rest:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    if source == "body":
        return source, name or "body", "字段" if name else "请求体"
    return source, name, "参数"


def validation_description(errors: list[Mapping[str, Any]]) -> tuple[str, list[dict]]:
    """One bilingual line naming every wrong parameter (Chinese first), and the list."""
    zh, en, items = [], [], []
    for err in errors[:20]:
        source, name, label = _where(tuple(err.get("loc") or ()))
        en_label = "parameter" if source != "body" else ("field" if name != "body" else "")
        reason_zh = _zh_reason(err)
        reason_en = str(err.get("msg", "invalid value"))
        zh.append(f"{label} {name}：{reason_zh}" if name != "body" else f"{label}{reason_zh}")
        en.append(f"{en_label} {name}: {reason_en}".strip() if name != "body"
                  else f"request body: {reason_en}")
        items.append({"parameter": name, "in": source,
                      "description": bilingual(zh[-1], en[-1])})
    return bilingual("；".join(zh), "; ".join(en)), items


# -- the handlers ---------------------------------------------------------------------

async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    description, items = validation_description(list(exc.errors()))
    return envelope(422, description, errors=items)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    detail = exc.detail
    if isinstance(detail, Mapping):  # a route that already built {code, description}
        return envelope(status, str(detail.get("description", "")), detail.get("code"),
                        exc.headers)
    if not isinstance(detail, str) or not detail or detail == HTTPStatus(status).phrase:
        detail = DEFAULT_DESCRIPTIONS.get(status) or bilingual(
            "请求失败", HTTPStatus(status).phrase.lower())
    return envelope(status, detail, None, exc.headers)


async def _user_error(request: Request, exc: UserError) -> JSONResponse:
    # a 4xx the error names itself (catalog errors carry one); otherwise 400
    status = getattr(exc, "status", 400)
    status = status if isinstance(status, int) and 400 <= status < 500 else 400
    # an error that points somewhere (e.g. "no request needed: the data is here") says where
    links = getattr(exc, "links", None)
    extra = {"links": dict(links)} if isinstance(links, Mapping) and links else {}
    return envelope(status, str(exc), getattr(exc, "code", None) or None, **extra)


async def _db_down(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
    return envelope(503, UNAVAILABLE)


async def _client_gone(request: Request, exc: ClientDisconnect) -> Response:
    """The client hung up before its request body arrived: nothing went wrong here and
    nobody reads the answer (499, nginx's "client closed request") — not a logged 500."""
    LOGGER.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=499)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    LOGGER.exception("unhandled error on %s", request.url.path)
    return envelope(500, INTERNAL)


def install_error_envelope(app: FastAPI) -> None:
    """Register the handlers that give every route the one error envelope."""
    handlers: dict[Any, Callable] = {RequestValidationError: _validation_error,
                                     StarletteHTTPException: _http_error,
                                     UserError: _user_error,
                                     DatabaseUnavailable: _db_down,
                                     ClientDisconnect: _client_gone,
                                     Exception: _internal}
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)


# -- authentication, as pure ASGI --------------------------------------------------------

class AuthMiddleware:
    """Authenticates every HTTP request before any route (platform or /ogc) runs and puts
    the :class:`Caller` on ``request.state.caller`` — from a key in a header, or else from
    a console session cookie (``request.state.session``; ``session_ended`` when the cookie
    named a session that is over), whose unsafe requests must pass the CSRF check
    (``jmgeo.sessions``) or answer 403 before any route runs. Pure ASGI, not BaseHTTPMiddleware:
    responses (streamed downloads) pass through untouched and context variables flow.
    The key lookup — a database query on a cache miss — runs in a worker thread
    (``jmgeo.auth.authenticate_headers``), never on the event loop."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        session, ended = None, False
        try:
            caller = await authenticate_headers(headers)
            if caller is ANONYMOUS:  # no key in a header: a console session, perhaps
                caller, session, ended = await authenticate_cookie(scope["path"], headers)
        except AuthError as exc:
            await envelope(401, str(exc), None, AUTH_CHALLENGE)(scope, receive, send)
            return
        except DatabaseUnavailable:
            await envelope(503, UNAVAILABLE)(scope, receive, send)
            return
        if session is not None and scope["method"].upper() not in sessions.SAFE_METHODS:
            refused, receive = await sessions.csrf_refusal(scope, receive, session)
            if refused:
                await envelope(403, sessions.CSRF_REFUSED, "CSRFRefused")(scope, receive, send)
                return
        state = scope.setdefault("state", {})
        state["caller"], state["session"], state["session_ended"] = caller, session, ended
        await self.app(scope, receive, send)
