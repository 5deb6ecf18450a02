"""联机查询 — online query (issue 11 §4): one record by its key, or the records at a point.

* ``GET /exchange/query/{name}/{key}`` — the record of a table or vector layer whose
  declared key (``layer.key_field``: 宗地代码, 统一社会信用代码, 身份证号 …) equals
  ``key``: one index probe (the loader gives every declared key, of tables and layers,
  the UNIQUE index ``layers.registry.index_key`` makes).
  A resource without a declared key answers 400.
* ``GET /exchange/query/{name}?lon=&lat=`` — the records of a vector layer at a point
  (CGCS2000 lon/lat): polygons by ``ST_Intersects``; points and lines within
  :data:`POINT_TOLERANCE_DEG` (≈1 m) of it, as nobody clicks exactly on a line; at most
  ``limit`` records (no count: ``truncated`` says more exist), and the region the point
  lies in (``spatial.regions.locate``).

Minimal fields: only the caller's visible fields (``layers.access_sql.AccessSQL``), masked
in SQL; ``?fields=a,b`` narrows further and a hidden field is refused exactly like an
absent one. The grant's region scope applies: **a record outside it answers byte for byte
like a key that does not exist** (the 404 envelope, the key never echoed). A query by key
needs the key field visible *and unmasked* for this caller — the rule for every filter
(DESIGN §5: a filter on a field the caller may not see is refused, never evaluated):
otherwise found / not found would be an oracle on a withheld value (a person table keyed by
身份证号, masked for everyone without a grant naming it). The refusal depends only on the
caller's own access, never on the data; match / no match without data is the base
libraries' verification service (核验), not this one.

A record looked at by key is also entered in the record-level access log where the
resource keeps one (a base library: ``layers.record_log``), with the audit row.

Every query of non-open data is audited (``layers.audit.record_access``, action
``query``, the rows returned, the share request the grant came from); when the audit row
cannot be written the answer is 503 and no data leaves. Every answer with records is counted as a delivery (``exchange_delivery``, mode ``query``:
records, bytes) after it is sent. Requests are rate-limited per API
key (per client address for anonymous callers) by a token bucket (:class:`QueryLimiter`,
``JMGEO_QUERY_RATE`` / ``JMGEO_QUERY_BURST``): 429 with ``Retry-After``. **The bucket lives
in the server process**: with N uvicorn workers a key may get up to N × the rate.

No pygeoapi in the path: one pooled connection, one statement per answer.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from psycopg import sql
from starlette.background import BackgroundTask

from jmgeo.db import connection
from jmgeo.errors import bilingual
from jmgeo.http import (
    AUDIT_DOWN,
    CallerDep,
    NameInPath,
    VisibleResource,
    audit_or_503,
    count_delivery,
    envelope,
)
from jmgeo.ogc.access import table_columns
from layers.access_sql import AccessSQL
from layers.policy import Caller
from layers.record_log import Records
from spatial import regions

router = APIRouter(prefix="/exchange/query", tags=["exchange"])

RECORD_NOT_FOUND = bilingual("记录不存在", "no such record")
# ≈1.1 m at Jiangmen's latitude: a click "on" a point or a line
POINT_TOLERANCE_DEG = 1e-5
POINT_LIMIT_MAX = 100


# -- the rate limit -------------------------------------------------------------------

class QueryLimiter:
    """Token buckets per client (API key id, or ``addr:<ip>`` for anonymous callers):
    ``rate`` tokens per second, at most ``burst``. In-process and thread-safe."""

    MAX_CLIENTS = 10_000  # beyond this many buckets, refilled ones are forgotten

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = float(rate), int(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls) -> QueryLimiter:
        from jmgeo.settings import get_settings

        s = get_settings()
        return cls(s.query_rate, s.query_burst)

    def take(self, client: str) -> float:
        """Take one token: 0 when allowed, else the seconds until one is available."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
            if len(self._buckets) > self.MAX_CLIENTS:
                self._forget_full(now)
            return 0.0 if allowed else (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled (they equal a new one): many anonymous
        addresses cannot grow the table without bound."""
        full = [c for c, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.rate >= self.burst]
        for client in full:
            del self._buckets[client]


def client_id(caller: Caller, request: Request) -> str:
    if caller.key_id is not None:
        return f"key:{caller.key_id}"
    host = request.client.host if request.client else "unknown"
    return f"addr:{host}"


def rate_limit(request: Request, caller: CallerDep) -> None:
    """Dependency run before the resource is resolved: a limited caller learns nothing."""
    limiter = getattr(request.app.state, "query_limiter", None)
    if limiter is None:
        limiter = request.app.state.query_limiter = QueryLimiter.from_settings()
    wait = limiter.take(client_id(caller, request))
    if wait > 0:
        raise HTTPException(429, bilingual(
            "查询过于频繁，请稍后重试", "too many queries: retry after the Retry-After "
            "seconds"), headers={"Retry-After": str(max(1, math.ceil(wait)))})


Limited = Annotated[None, Depends(rate_limit)]


# -- the queries ----------------------------------------------------------------------

def _rules(resource: VisibleResource) -> AccessSQL:
    geom = None if resource.kind == "table" else "geom"
    return AccessSQL(resource.access, table_columns(resource.table_name), geom=geom)


def _chosen(rules: AccessSQL, fields: str | None) -> list[str]:
    """The visible columns, narrowed by ``?fields=``; a hidden field is refused like an
    absent one (the same words)."""
    visible = rules.columns()
    if fields is None:
        return [c for c in visible if c != "fid"]
    names = [f.strip() for f in fields.split(",") if f.strip()]
    for name in names:
        if name not in visible or name == "fid":
            raise HTTPException(400, f"参数 fields：未知字段 {name} / parameter fields: "
                                     f"unknown field {name}")
    return list(dict.fromkeys(names))


def _statement(resource: VisibleResource, rules: AccessSQL, names: list[str],
               where: sql.Composable, params: list[Any], limit: int) -> tuple[sql.Composed,
                                                                               list[Any]]:
    cols = rules.select_list(names) or [sql.SQL("NULL AS {}").format(sql.Identifier("_"))]
    if resource.kind != "table":
        cols.append(sql.SQL("ST_AsGeoJSON({}, 7)::json AS {}").format(
            rules.geom_sql(), sql.Identifier("__geometry")))
    scope, scope_params = rules.row_scope()
    if scope is not None:
        where = sql.SQL("({}) AND {}").format(where, scope)
        params = [*params, *scope_params]
    table = sql.SQL(".").join(sql.Identifier(p) for p in resource.table_name.split("."))
    q = sql.SQL("SELECT {} FROM {} t WHERE {} LIMIT {}").format(
        sql.SQL(", ").join(cols), table, where, sql.Literal(limit))
    return q, params


def _record(resource: VisibleResource, row: dict[str, Any], names: list[str]) -> dict:
    props = {n: row[n] for n in names}
    if resource.kind == "table":
        return {"properties": props}
    return {"type": "Feature", "properties": props, "geometry": row["__geometry"]}


def _audit(caller: Caller, resource: VisibleResource, request: Request, rows: int,
           status: int, records: Records | None = None) -> None:
    refused = audit_or_503(caller, resource.access, "query", request, rows, status,
                           records=records)
    if refused is not None:
        raise HTTPException(503, AUDIT_DOWN)


def _answer(caller: Caller, resource: VisibleResource, body: dict, rows: int
            ) -> JSONResponse:
    """The answer; its records counted as a delivery (mode ``query``) once it is sent."""
    headers = {"Cache-Control": "private, no-store"} if resource.access.audited else {}
    response = JSONResponse(body, headers=headers)
    if rows:
        response.background = BackgroundTask(count_delivery, caller, resource.access,
                                             "query", rows, len(response.body))
    return response


@router.get("/{name}/{key}", summary="one record by its key (联机查询：按键)")
def query_by_key(request: Request, _limit: Limited, caller: CallerDep,
                 resource: NameInPath, key: str,
                 fields: str | None = Query(None, description="comma-separated fields")
                 ) -> JSONResponse:
    """The record whose declared key equals ``key``, with the caller's visible fields
    (masked), its geometry as GeoJSON (CRS84) for a layer. A missing key and a record the
    grant hides answer the same 404."""
    key_field = resource.row.get("key_field")
    if not key_field:
        raise HTTPException(400, f"资源 {resource.name} 未声明键字段，不能按键查询（可按点查询"
                                 f"图层） / resource {resource.name} declares no key field: "
                                 "no query by key (query a layer by point)")
    rules = _rules(resource)
    if not rules.visible(key_field) or rules.masked(key_field):
        raise HTTPException(400, f"您的授权不含未脱敏的键字段 {key_field}，不能按键查询；请提出共享申请"
                                 f"并写明该字段 / your access does not include the key field "
                                 f"{key_field} unmasked, so you cannot query by it: file a "
                                 "share request naming that field")
    names = _chosen(rules, fields)
    kind = rules.table_columns[key_field]
    where = sql.SQL("{} = %s::{}").format(rules.column(key_field), sql.SQL(kind))
    q, params = _statement(resource, rules, names, where, [key], 1)
    try:
        with connection() as conn:
            row = conn.execute(q, params).fetchone()
    except psycopg.DataError:  # a key that cannot be of the key's type: no such record
        row = None
    # the record looked at goes to the record-level log with the audit row, where the
    # resource keeps one (a base library: who looked at this person); its id is the key,
    # which the caller sees in clear (checked above)
    _audit(caller, resource, request, 0 if row is None else 1, 404 if row is None else 200,
           None if row is None else Records(resource.name, ids=(key,)))
    if row is None:
        return envelope(404, RECORD_NOT_FOUND)
    return _answer(caller, resource, {"resource": resource.name, "key_field": key_field,
                                      **_record(resource, row, names)}, 1)


@router.get("/{name}", summary="the records at a point (联机查询：按点)")
def query_by_point(request: Request, _limit: Limited, caller: CallerDep,
                   resource: NameInPath,
                   lon: float = Query(..., ge=-180, le=180, description="CGCS2000 lon"),
                   lat: float = Query(..., ge=-90, le=90, description="CGCS2000 lat"),
                   fields: str | None = Query(None, description="comma-separated fields"),
                   limit: int = Query(10, ge=1, le=POINT_LIMIT_MAX)) -> JSONResponse:
    """Which records of a vector layer are at (lon, lat) — at most ``limit`` — and the
    region the point lies in."""
    if resource.kind != "vector":
        what = "栅格图层" if resource.kind == "raster" else "表格资源（无几何）"
        raise HTTPException(400, f"{what}不能按点查询，请按键查询 / {resource.name} is a "
                                 f"{resource.kind} resource: query it by key, not by point")
    rules = _rules(resource)
    names = _chosen(rules, fields)
    point = sql.SQL("ST_SetSRID(ST_Point(%s, %s), 4490)")
    geom = rules.geom_sql()
    if "polygon" in str(resource.row.get("geometry_type") or "").lower():
        where = sql.SQL("ST_Intersects({}, {})").format(geom, point)
        params: list[Any] = [lon, lat]
    else:
        where = sql.SQL("ST_DWithin({}, {}, %s)").format(geom, point)
        params = [lon, lat, POINT_TOLERANCE_DEG]
    q, params = _statement(resource, rules, names, where, params, limit + 1)
    with connection() as conn:
        rows = conn.execute(q, params).fetchall()
        region = regions.locate(conn, lon, lat)
    truncated = len(rows) > limit
    rows = rows[:limit]
    _audit(caller, resource, request, len(rows), 200)
    return _answer(caller, resource, {
        "resource": resource.name, "lon": lon, "lat": lat, "region": region,
        "tolerance_deg": POINT_TOLERANCE_DEG if "polygon" not in str(
            resource.row.get("geometry_type") or "").lower() else 0,
        "records": [_record(resource, r, names) for r in rows],
        "numberReturned": len(rows), "truncated": truncated}, len(rows))
