"""A PostGIS feature provider for pygeoapi that knows the framework and the policy.

Why not pygeoapi's own PostgreSQL provider: it swaps the axes of a CRS84 ``bbox`` on
EPSG:4490 tables (returning nothing), builds a pyproj Transformer and GeoJSON row by row
in Python on every request, and cannot restrict fields, rows or mask values per caller.

This one reads like any pygeoapi provider (configured by ``provider_def``, created per
request — so it holds no connections; it borrows from ``jmgeo.db``'s pool) and:

* treats everything pygeoapi hands it in the storage CRS (``bbox``, filter geometries) as
  being in the storage CRS's *authority* axis order — lat/lon for EPSG:4490 — while the
  table stores lon/lat, so it flips exactly once, in SQL;
* reprojects output in PostGIS (``ST_Transform``) and writes authority axis order for
  ``crs=`` answers (OGC API Features Part 2), CRS84 lon/lat by default;
* builds GeoJSON in PostGIS (``ST_AsGeoJSON``/``json_build_object``);
* applies the caller's access (``provider_def['jmgeo']``: visible fields, masks, region
  scope) that our ASGI layer put there from ``layers.policy`` — the provider never decides
  access, it only obeys it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
from psycopg import sql
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderGenericError,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
)

from jmgeo.db import DatabaseUnavailable, connection
from jmgeo.ogc.cql import CQLError, CQLTranslator, attributes
from layers.masking import mask_expression
from spatial.crs import CANONICAL_EPSG, get_crs, is_lat_first

LOGGER = logging.getLogger(__name__)

_PG_TO_JSON = {
    "integer": "integer", "bigint": "integer", "smallint": "integer",
    "numeric": "number", "double precision": "number", "real": "number",
    "boolean": "boolean", "date": "string", "timestamp with time zone": "string",
    "timestamp without time zone": "string", "jsonb": "object", "json": "object",
}
_FORMATS = {"date": "date", "timestamp with time zone": "date-time",
            "timestamp without time zone": "date-time"}

# column metadata per table: {table: {column: pg type}}; tables are versioned by name,
# so a cached entry never goes stale (a new load is a new table).
_columns_cache: dict[str, dict[str, str]] = {}
_cache_lock = threading.Lock()


class ProviderDatabaseUnavailable(ProviderGenericError):
    """The database is down: answer 503 with a message, never a traceback."""

    ogc_exception_code = "ServiceUnavailable"
    http_status_code = 503
    default_msg = "数据库暂不可用，请稍后重试 / database temporarily unavailable, retry later"


def split_table(name: str) -> tuple[str, str]:
    schema, _, table = name.rpartition(".")
    return (schema or "public"), table


def table_columns(table: str) -> dict[str, str]:
    """Column name → PostgreSQL type of a data table (cached; tables never change shape)."""
    cols = _columns_cache.get(table)
    if cols is not None:
        return cols
    schema, name = split_table(table)
    with connection() as conn:
        rows = conn.execute(
            "SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum", (schema, name)).fetchall()
    cols = {r["name"]: r["type"] for r in rows}
    if cols:
        with _cache_lock:
            _columns_cache[table] = cols
    return cols


def _output_srid(crs_transform_spec) -> tuple[int, bool]:
    """(SRID to ST_Transform to, flip to lat/lon?) for a pygeoapi CrsTransformSpec.

    ``None`` means the request asked for the storage CRS itself (EPSG:4490), whose
    authority order is lat/lon: same coordinates, flipped.
    """
    if crs_transform_spec is None:
        return CANONICAL_EPSG, True
    target = get_crs(crs_transform_spec.target_crs_uri)
    epsg = target.to_epsg() or 4326  # OGC CRS84 has no EPSG code: lon/lat WGS 84
    return epsg, is_lat_first(target)


class PostGISProvider(BaseProvider):
    """pygeoapi feature provider over one framework table (see module docstring)."""

    def __init__(self, provider_def: dict):
        super().__init__(provider_def)
        data = provider_def["data"]
        self.table: str = data["table"] if isinstance(data, dict) else data
        self.static_where: str | None = data.get("where") if isinstance(data, dict) else None
        self.id_field = provider_def.get("id_field", "fid")
        self.geom_field = provider_def.get("geom_field", "geom")
        access = provider_def.get("jmgeo", {}) or {}
        self.visible: list[str] | None = access.get("fields")  # None: every column
        self.masks: dict[str, str] = access.get("masks", {}) or {}
        self.region_scope: list[str] | None = access.get("regions")
        self.labels: dict[str, str] = access.get("labels", {}) or {}
        self.count_threshold = int(access.get("count_threshold", 200_000))
        self._fields = self.get_fields()

    # -- schema ---------------------------------------------------------------
    def _columns(self) -> dict[str, str]:
        try:
            return table_columns(self.table)
        except DatabaseUnavailable as exc:
            raise ProviderDatabaseUnavailable() from exc

    def property_columns(self) -> list[str]:
        """The columns this caller may see, in table order (geometry excluded)."""
        cols = [c for c in self._columns() if c != self.geom_field]
        if self.visible is not None:
            allowed = set(self.visible) | {self.id_field}
            cols = [c for c in cols if c in allowed]
        return cols

    def get_fields(self) -> dict[str, dict[str, Any]]:
        cols = self._columns()
        fields = {}
        for name in self.property_columns():
            pgtype = cols[name]
            base = pgtype.split("(")[0]
            entry: dict[str, Any] = {"type": _PG_TO_JSON.get(base, "string")}
            if base in _FORMATS:
                entry["format"] = _FORMATS[base]
            if name in self.masks:
                entry["type"] = "string"
            if name in self.labels:
                entry["title"] = self.labels[name]
            fields[name] = entry
        return fields

    # -- SQL pieces -----------------------------------------------------------
    def _column_sql(self, name: str) -> sql.Composable:
        if name not in self._fields:
            # same message whether the field is hidden or absent: no oracle
            raise ProviderInvalidQueryError(
                user_msg=f"未知字段 / unknown property: {name}")
        col = sql.SQL("t.{}").format(sql.Identifier(name))
        if name in self.masks:
            return mask_expression(self.masks[name], col)
        return col

    def _geometry_sql(self, crs_transform_spec) -> tuple[sql.Composable, int]:
        srid, flip = _output_srid(crs_transform_spec)
        geom: sql.Composable = sql.SQL("t.{}").format(sql.Identifier(self.geom_field))
        if srid not in (CANONICAL_EPSG, 4326):
            geom = sql.SQL("ST_Transform({}, {})").format(geom, sql.Literal(srid))
        if flip:
            geom = sql.SQL("ST_FlipCoordinates({})").format(geom)
        digits = 7 if get_crs(f"EPSG:{srid}").is_geographic else 3
        return sql.SQL("ST_AsGeoJSON({}, {})::json").format(geom, sql.Literal(digits)), srid

    def _properties_sql(self, select: list[str] | None) -> sql.Composable:
        names = [c for c in self.property_columns() if c != self.id_field or
                 (select and self.id_field in select)]
        if select:
            names = [c for c in names if c in select]
        if not names:
            return sql.SQL("'{}'::json")
        chunks = []
        for i in range(0, len(names), 50):  # json_build_object takes at most 100 args
            args = sql.SQL(", ").join(
                sql.SQL("{}, {}").format(sql.Literal(n), self._column_sql(n))
                for n in names[i:i + 50])
            chunks.append(sql.SQL("jsonb_build_object({})" if len(names) > 50
                                  else "json_build_object({})").format(args))
        return sql.SQL(" || ").join(chunks)

    def _where(self, bbox, properties, filterq, params: list,
               extra: list[sql.Composable] | None = None) -> sql.Composable:
        clauses: list[sql.Composable] = list(extra or [])
        if self.static_where:  # trusted: comes from our generated config, never a request
            clauses.append(sql.SQL(self.static_where))
        geom = sql.SQL("t.{}").format(sql.Identifier(self.geom_field))
        if bbox:
            if len(bbox) == 6:
                bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
            # pygeoapi gives bbox in the storage CRS's authority order: lat/lon for 4490
            if is_lat_first(get_crs(f"EPSG:{CANONICAL_EPSG}")):
                miny, minx, maxy, maxx = bbox
            else:
                minx, miny, maxx, maxy = bbox
            params.extend([minx, miny, maxx, maxy])
            clauses.append(sql.SQL(
                "ST_Intersects({g}, ST_MakeEnvelope(%s, %s, %s, %s, {srid}))").format(
                g=geom, srid=sql.Literal(CANONICAL_EPSG)))
        cols = self._columns()
        for name, value in properties or []:
            col = self._column_sql(name)
            if name in self.masks:
                clauses.append(sql.SQL("{} = %s").format(col))
            else:
                clauses.append(sql.SQL("{} = CAST(%s AS {})").format(
                    col, sql.SQL(cols[name])))
            params.append(value)
        if filterq is not None:
            for name in set(attributes(filterq)):
                if name not in (self.geom_field, "geometry"):
                    self._column_sql(name)  # refuses hidden / unknown before any SQL

            def resolve(name: str) -> sql.Composable:
                if name in (self.geom_field, "geometry"):
                    return geom
                return self._column_sql(name)

            tr = CQLTranslator(resolve, geom, CANONICAL_EPSG,
                               flip_literals=is_lat_first(get_crs(f"EPSG:{CANONICAL_EPSG}")))
            try:
                clauses.append(tr(filterq))
            except CQLError as exc:
                raise ProviderInvalidQueryError(user_msg=str(exc)) from exc
            params.extend(tr.params)
        if self.region_scope is not None:
            params.append(list(self.region_scope))
            clauses.append(sql.SQL(
                "EXISTS (SELECT 1 FROM public.region_part rp WHERE rp.code = ANY(%s) "
                "AND rp.geom && {g} AND ST_Intersects(rp.geom, {g}))").format(g=geom))
        if not clauses:
            return sql.SQL("")
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses)

    def _from(self) -> sql.Composable:
        schema, name = split_table(self.table)
        return sql.SQL(" FROM {} AS t").format(sql.Identifier(schema, name))

    # -- provider API ---------------------------------------------------------
    def query(self, offset: int = 0, limit: int = 10, resulttype: str = "results",
              bbox: list | None = None, datetime_: str | None = None,
              properties: list | None = None, sortby: list | None = None,
              select_properties: list | None = None, skip_geometry: bool = False,
              q: str | None = None, filterq=None, crs_transform_spec=None,
              **kwargs) -> dict:
        params: list = []
        where = self._where(bbox, properties, filterq, params)
        order = [sql.SQL("{} {}").format(self._column_sql(s["property"]),
                                         sql.SQL("DESC" if s["order"] == "-" else "ASC"))
                 for s in sortby or []]
        order.append(sql.SQL("t.{}").format(sql.Identifier(self.id_field)))
        geom_sql, _ = self._geometry_sql(crs_transform_spec)
        if skip_geometry:
            geom_sql = sql.SQL("NULL::json")
        query = (sql.SQL("SELECT t.{id} AS id, {g} AS geometry, {p} AS properties").format(
            id=sql.Identifier(self.id_field), g=geom_sql,
            p=self._properties_sql(select_properties))
            + self._from() + where + sql.SQL(" ORDER BY ") + sql.SQL(", ").join(order)
            + sql.SQL(" LIMIT %s OFFSET %s"))
        try:
            with connection() as conn:
                matched = self._number_matched(conn, where, params, resulttype)
                if resulttype == "hits":
                    rows = []
                else:
                    rows = conn.execute(query, [*params, limit, offset]).fetchall()
        except DatabaseUnavailable as exc:
            raise ProviderDatabaseUnavailable() from exc
        except (psycopg.errors.DataError, psycopg.errors.InvalidParameterValue) as exc:
            raise ProviderInvalidQueryError(
                user_msg=f"查询参数无效 / invalid query value: {exc.diag.message_primary}"
            ) from exc
        features = [{"type": "Feature", "id": r["id"], "geometry": r["geometry"],
                     "properties": r["properties"]} for r in rows]
        out: dict[str, Any] = {"type": "FeatureCollection", "features": features,
                               "numberReturned": len(features)}
        if matched is not None:
            out["numberMatched"] = matched
        return out

    def _number_matched(self, conn, where, params, resulttype) -> int | None:
        """Exact count when asked (hits) or cheap (small table); else omitted."""
        schema, name = split_table(self.table)
        if resulttype != "hits":
            est = conn.execute(
                "SELECT c.reltuples::bigint AS n FROM pg_class c JOIN pg_namespace s "
                "ON s.oid = c.relnamespace WHERE s.nspname = %s AND c.relname = %s",
                (schema, name)).fetchone()
            if est and est["n"] > self.count_threshold:
                return None
        row = conn.execute(sql.SQL("SELECT count(*) AS n") + self._from() + where,
                           params).fetchone()
        return int(row["n"])

    def get(self, identifier, crs_transform_spec=None, **kwargs) -> dict:
        geom_sql, _ = self._geometry_sql(crs_transform_spec)
        id_type = self._columns().get(self.id_field, "text")
        params: list = [str(identifier)]
        cond = sql.SQL("t.{} = CAST(%s AS {})").format(sql.Identifier(self.id_field),
                                                       sql.SQL(id_type))
        where = self._where(None, None, None, params, extra=[cond])
        query = (sql.SQL("SELECT t.{id} AS id, {g} AS geometry, {p} AS properties").format(
            id=sql.Identifier(self.id_field), g=geom_sql, p=self._properties_sql(None))
            + self._from() + where)
        try:
            with connection() as conn:
                row = conn.execute(query, params).fetchone()
        except DatabaseUnavailable as exc:
            raise ProviderDatabaseUnavailable() from exc
        except psycopg.errors.DataError:
            row = None
        if row is None:
            raise ProviderItemNotFoundError(user_msg=f"要素不存在 / item not found: {identifier}")
        return {"type": "Feature", "id": row["id"], "geometry": row["geometry"],
                "properties": row["properties"]}
